from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from agent_registry.access.api.documents import TrainingDocumentViewSet
from agent_registry.access.api.views import SubscriptionViewSet
from agent_registry.agents.api.views import AgentViewSet, CatalogViewSet
from agent_registry.billing.api.revenue import ProviderRevenueViewSet
from agent_registry.billing.api.snapshots import SnapshotViewSet
from agent_registry.billing.stripe.api import (
    CheckoutView,
    CustomerView,
    StripeSubscriptionViewSet,
    WebhookView,
)
from agent_registry.core import health, metrics
from agent_registry.secrets.api.views import EnvironmentSecretGrantViewSet, RuntimeSecretViewSet
from agent_registry.tenants.api.views import ProjectViewSet, TenantViewSet
from agent_registry.usage.api.daily import DailySummaryViewSet
from agent_registry.usage.api.provider import ProviderUsageViewSet
from agent_registry.usage.api.records import UsageRecordViewSet
from agent_registry.waldur.api.views import WaldurHookView
from agent_registry.widget.api import EmbedCodeView, WidgetKeyViewSet, WidgetSessionView
from agent_registry.widget.views import agent_widget_js

# "/?": a POST without the trailing slash is served, not redirected (and its body lost).
router = DefaultRouter(trailing_slash="/?")  # type: ignore[arg-type]  # DRF takes a pattern here
router.include_root_view = False
router.register("tenants", TenantViewSet, basename="tenant")
router.register("projects", ProjectViewSet, basename="project")
_TENANT = r"tenants/(?P<slug>[-a-zA-Z0-9_]+)"
router.register(f"{_TENANT}/runtime-secrets", RuntimeSecretViewSet, basename="runtime-secret")
router.register(
    f"{_TENANT}/environment-secrets", EnvironmentSecretGrantViewSet, basename="environment-secret"
)
router.register("agents", AgentViewSet, basename="agent")
router.register("catalog", CatalogViewSet, basename="catalog")
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register(
    r"subscriptions/(?P<subscription_pk>[^/.]+)/documents",
    TrainingDocumentViewSet,
    basename="subscription-document",
)
# The widget's keys (issue 14; widget/api.py).
router.register(
    r"subscriptions/(?P<subscription_pk>[^/.]+)/widget-keys",
    WidgetKeyViewSet,
    basename="subscription-widget-key",
)
router.register("usage/records", UsageRecordViewSet, basename="usage-record")
router.register("usage/daily", DailySummaryViewSet, basename="usage-daily")
router.register("usage/snapshots", SnapshotViewSet, basename="usage-snapshot")
router.register("provider/usage", ProviderUsageViewSet, basename="provider-usage")
router.register("provider/revenue", ProviderRevenueViewSet, basename="provider-revenue")
router.register("billing/subscriptions", StripeSubscriptionViewSet, basename="billing-subscription")

admin.site.site_header = "Agent Registry"
admin.site.site_title = "Agent Registry admin"
admin.site.index_title = "Operations"

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/v1/webhooks/waldur/<str:secret>/", WaldurHookView.as_view(), name="waldur-hook"),
    # Stripe (billing/stripe/api.py); the router adds billing/subscriptions.
    path("api/v1/billing/checkout/", CheckoutView.as_view(), name="billing-checkout"),
    path("api/v1/billing/customer/", CustomerView.as_view(), name="billing-customer"),
    path("api/v1/billing/webhooks/", WebhookView.as_view(), name="billing-webhooks"),
    # The widget (issue 14; widget/): its script, embed code and sessions.
    path("widget/agent-widget.js", agent_widget_js, name="widget-script"),
    re_path(
        r"^api/v1/subscriptions/(?P<pk>[^/.]+)/embed-code/?$",
        EmbedCodeView.as_view(),
        name="subscription-embed-code",
    ),
    re_path(r"^api/v1/widget/sessions/?$", WidgetSessionView.as_view(), name="widget-sessions"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    path("portal/", include("agent_registry.portal.urls")),
]

if settings.PORTAL_OIDC_ENABLED:
    # mozilla-django-oidc's views (un-namespaced, as it reverses them by bare name):
    # /portal/oidc/authenticate/ and /portal/oidc/callback/ (docs/portal.md).
    urlpatterns.append(path("portal/oidc/", include("mozilla_django_oidc.urls")))

# The portal's paths get a page in words; every other path the API's JSON envelope.
handler400 = "agent_registry.portal.errors.handler400"
handler403 = "agent_registry.portal.errors.handler403"
handler404 = "agent_registry.portal.errors.handler404"
handler500 = "agent_registry.portal.errors.handler500"
