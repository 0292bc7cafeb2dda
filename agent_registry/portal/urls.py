from django.urls import path

from agent_registry.portal.views import (
    auth,
    catalog,
    documents,
    provider,
    subscriptions,
    team,
    usage,
)

app_name = "portal"

urlpatterns = [
    path("", catalog.marketplace, name="marketplace"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("switch/", auth.switch_tenant, name="switch"),
    path("agents/<slug:agent_id>/", catalog.agent_detail, name="agent"),
    path("agents/<slug:agent_id>/subscribe/", catalog.subscribe, name="subscribe"),
    path("subscriptions/", subscriptions.subscription_list, name="subscriptions"),
    path("subscriptions/<uuid:access_id>/", subscriptions.subscription_detail, name="subscription"),
    path(
        "subscriptions/<uuid:access_id>/rotate/",
        subscriptions.subscription_rotate,
        name="subscription-rotate",
    ),
    path(
        "subscriptions/<uuid:access_id>/revoke/",
        subscriptions.subscription_revoke,
        name="subscription-revoke",
    ),
    path(
        "subscriptions/<uuid:access_id>/new-key/",
        subscriptions.subscription_new_key,
        name="subscription-new-key",
    ),
    # Widget keys (issue 14).
    path(
        "subscriptions/<uuid:access_id>/widget-keys/",
        subscriptions.widget_key_create,
        name="subscription-widget-key-create",
    ),
    path(
        "subscriptions/<uuid:access_id>/widget-keys/<uuid:key_id>/revoke/",
        subscriptions.widget_key_revoke,
        name="subscription-widget-key-revoke",
    ),
    path(
        "subscriptions/<uuid:access_id>/configuration/",
        subscriptions.subscription_configure,
        name="subscription-configure",
    ),
    path(
        "subscriptions/<uuid:access_id>/documents/",
        documents.document_upload,
        name="subscription-document-upload",
    ),
    path(
        "subscriptions/<uuid:access_id>/documents/<uuid:document_id>/delete/",
        documents.document_delete,
        name="subscription-document-delete",
    ),
    path("usage/", usage.usage, name="usage"),
    path("usage/export.csv", usage.usage_csv, name="usage-csv"),
    path("team/", team.team, name="team"),
    path("team/<str:username>/remove/", team.team_remove, name="team-remove"),
    path("provider/", provider.dashboard, name="provider"),
    path("provider/agents/new/", provider.agent_new, name="provider-agent-new"),
    path("provider/agents/<slug:agent_id>/", provider.agent_manage, name="provider-agent"),
    path("provider/agents/<slug:agent_id>/edit/", provider.agent_edit, name="provider-agent-edit"),
    path("provider/agents/<slug:agent_id>/plans/", provider.plan_add, name="provider-plan-add"),
    path(
        "provider/agents/<slug:agent_id>/plans/<str:plan_id>/deactivate/",
        provider.plan_deactivate,
        name="provider-plan-deactivate",
    ),
    path(
        "provider/agents/<slug:agent_id>/<slug:action>/",
        provider.agent_action,
        name="provider-agent-action",
    ),
]
