"""The customer's pages, on the Django test client: what they show, who may do what.

Every write goes through the API's services, so each refusal here is the API's own
(its words, its status); these tests check the portal passes them on, and scopes reads.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.access.services import access_create
from agent_registry.core import keys
from agent_registry.tenants.models import TenantInvitation, TenantMembership
from agent_registry.usage.models import DailyUsageSummary
from tests import factories
from tests.portal.conftest import PASSWORD, browser_of, member_browser

pytestmark = pytest.mark.django_db

KEY = re.compile(r'id="api-key"[^>]*value="([^"]+)"')


def subscribe(browser: Client, world, project=None, plan=None):
    return browser.post(
        f"/portal/agents/{world.agent.agent_id}/subscribe/",
        {"project": (project or world.customer_project).pk, "plan": (plan or world.free_plan).pk},
    )


def summary(
    access, day, calls=3, cost=Decimal("0.5"), p50: int | None = 30, p95: int = 90
) -> DailyUsageSummary:
    return DailyUsageSummary.objects.create(
        tenant=access.tenant,
        agent_instance=access.agent_instance,
        access=access,
        date=day,
        currency="USD",
        total_requests=calls,
        successful_requests=calls,
        total_tokens=10 * calls,
        avg_response_time_ms=40,
        p50_response_time_ms=p50,
        p95_response_time_ms=p95,
        cost_cents=cost,
        computed_at=datetime.now(UTC),
    )


# --- Marketplace and agent page -------------------------------------------------------


def test_the_marketplace_lists_active_agents_for_anyone_with_a_labelled_search(world):
    draft = factories.make_agent(project=world.agent.project, state="draft", agent_id="hidden")

    response = Client().get("/portal/")

    html = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id_q">Search</label>' in html
    assert "Helper bot" in html
    assert draft.agent_id not in html


def test_search_and_category_filter_the_marketplace(world):
    factories.make_agent(project=world.agent.project, agent_id="poet", name="Poet", category="fun")

    by_text = Client().get("/portal/", {"q": "invoices"}).content.decode()
    by_category = Client().get("/portal/", {"category": "fun"}).content.decode()

    assert "Helper bot" in by_text
    assert "Poet" not in by_text
    assert "Poet" in by_category
    assert "Helper bot" not in by_category


def test_an_htmx_search_answers_the_grid_alone(world):
    response = Client().get("/portal/", {"q": "helper"}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="agent-grid"')
    assert "Helper bot" in html


def test_the_marketplace_shows_seven_days_of_measured_quality(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    today = datetime.now(UTC).date()
    # p50 over the week: the call-weighted median of the days' p50s (the busy day's 20);
    # p95: the worst day's. The eighth day back is outside the window.
    summary(issued.access, today, calls=5, p50=20, p95=90)
    summary(issued.access, today - timedelta(days=1), calls=2, p50=70, p95=120)
    summary(issued.access, today - timedelta(days=7), calls=50, p50=999, p95=999)

    html = Client().get("/portal/").content.decode()
    detail = Client().get(f"/portal/agents/{world.agent.agent_id}/").content.decode()

    quality = "Last 7 days: 100.0% successful, p50 20 ms, p95 120 ms, mean 40 ms (7 calls)"
    assert quality in html
    assert quality in detail


def test_days_summarised_before_p50_was_kept_say_so(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    summary(issued.access, datetime.now(UTC).date(), calls=1, p50=None)

    html = Client().get("/portal/").content.decode()

    assert "p50 not measured yet, p95 90 ms, mean 40 ms (1 call)" in html


def test_the_agent_page_shows_plans_prices_and_limits(world):
    factories.make_plan(world.agent, name="Pro", billing_model="subscription", price_cents=1900)

    html = Client().get(f"/portal/agents/{world.agent.agent_id}/").content.decode()

    assert "Free" in html
    assert "19.00 USD a month" in html
    assert "100 calls a month" in html


def test_another_tenants_draft_agent_is_not_found(world):
    factories.make_agent(project=world.agent.project, state="draft", agent_id="secret-draft")

    outsider = member_browser(world.outsider, "owner")
    response = outsider.get("/portal/agents/secret-draft/")

    assert response.status_code == 404
    assert "No agent &#x27;secret-draft&#x27;." in response.content.decode()


# --- Login and sessions ---------------------------------------------------------------


def test_a_local_account_logs_in_with_a_secure_session_cookie(world):
    user = factories.member(world.customer, "owner", username="alice")
    user.set_password(PASSWORD)
    user.save()
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/portal/login/")
    token = page.cookies["csrftoken"].value

    response = browser.post(
        "/portal/login/",
        {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )

    assert response.status_code == 302
    assert response["Location"] == "/portal/"
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"


def test_a_form_without_its_csrf_token_is_refused(world):
    user = factories.member(world.customer, "owner")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)

    response = subscribe(browser, world)

    assert response.status_code == 403
    assert not AgentAccess.objects.exists()


def test_pages_of_an_account_ask_for_a_login_first(world):
    response = Client().get("/portal/subscriptions/")

    assert response.status_code == 302
    assert response["Location"].startswith("/portal/login/")


# --- Subscribing and keys -------------------------------------------------------------


def test_subscribing_shows_the_key_once_and_the_key_is_the_subscriptions(world):
    browser = member_browser(world.customer, "developer")

    response = subscribe(browser, world)

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    api_key = KEY.search(response.content.decode()).group(1)
    access = AgentAccess.objects.get(project=world.customer_project)
    assert keys.key_matches(api_key, access.key_hash)
    assert b">Copy</button>" in response.content
    detail = browser.get(f"/portal/subscriptions/{access.pk}/").content.decode()
    assert access.key_prefix in detail
    assert api_key not in detail


def test_a_viewer_may_not_subscribe_and_reads_why(world):
    browser = member_browser(world.customer, "viewer")

    response = subscribe(browser, world)

    assert response.status_code == 403
    assert "This needs the developer role in tenant &#x27;acme&#x27;." in response.content.decode()
    assert not AgentAccess.objects.exists()


def test_subscribing_twice_shows_the_services_conflict_in_words(world):
    browser = member_browser(world.customer, "developer")
    subscribe(browser, world)

    response = subscribe(browser, world)

    assert response.status_code == 409
    assert "already has a subscription to plan" in response.content.decode()


def test_no_one_subscribes_another_organisations_project(world):
    browser = member_browser(world.customer, "owner")

    response = subscribe(browser, world, project=world.outsider_project)

    assert response.status_code == 400
    assert "No such project." in response.content.decode()
    assert not AgentAccess.objects.exists()


def test_my_agents_lists_the_organisations_subscriptions_with_quota(world):
    mine = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    theirs = access_create(agent=world.agent, plan=world.free_plan, project=world.outsider_project)
    browser = member_browser(world.customer, "viewer")

    html = browser.get("/portal/subscriptions/").content.decode()

    assert mine.access.key_prefix in html
    assert theirs.access.key_prefix not in html
    assert "0 of 100" in html


def test_my_agents_can_be_narrowed_to_one_project(world):
    second = factories.ProjectFactory(tenant=world.customer, name="Shop")
    website = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    shop = access_create(agent=world.agent, plan=world.free_plan, project=second)
    browser = member_browser(world.customer, "viewer")

    html = browser.get("/portal/subscriptions/", {"project": second.pk}).content.decode()
    bogus = browser.get("/portal/subscriptions/", {"project": "nope"})

    assert shop.access.key_prefix in html
    assert website.access.key_prefix not in html
    assert bogus.status_code == 200


def test_another_organisations_subscription_is_not_found(world):
    theirs = access_create(agent=world.agent, plan=world.free_plan, project=world.outsider_project)
    browser = member_browser(world.customer, "owner")

    for path in ("", "revoke/"):
        response = browser.get(f"/portal/subscriptions/{theirs.access.pk}/{path}")
        assert response.status_code == 404
    assert browser.post(f"/portal/subscriptions/{theirs.access.pk}/rotate/").status_code == 404
    theirs.access.refresh_from_db()
    assert theirs.access.key_rotated_at is None


def test_rotating_shows_a_new_key_and_keeps_the_old_one_in_grace(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    browser = member_browser(world.customer, "developer")

    response = browser.post(f"/portal/subscriptions/{issued.access.pk}/rotate/")

    new_key = KEY.search(response.content.decode()).group(1)
    issued.access.refresh_from_db()
    assert new_key != issued.api_key
    assert keys.key_matches(new_key, issued.access.key_hash)
    assert issued.access.previous_key_expires_at is not None


def test_revoking_asks_first_and_needs_the_admin_role(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    path = f"/portal/subscriptions/{issued.access.pk}/revoke/"

    confirm = member_browser(world.customer, "admin").get(path)
    refused = member_browser(world.customer, "developer").post(path, {"reason": "x"})

    assert confirm.status_code == 200
    assert b"Revoke this subscription?" in confirm.content
    assert refused.status_code == 403
    issued.access.refresh_from_db()
    assert issued.access.status == AccessStatus.ACTIVE


def test_revoking_stops_the_key_and_create_key_subscribes_again(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    browser = member_browser(world.customer, "admin")

    browser.post(f"/portal/subscriptions/{issued.access.pk}/revoke/", {"reason": "leaked"})
    again = browser.post(f"/portal/subscriptions/{issued.access.pk}/new-key/")

    issued.access.refresh_from_db()
    assert issued.access.status == AccessStatus.REVOKED
    assert issued.access.revocation_reason == "leaked"
    assert again.status_code == 201
    assert AgentAccess.objects.filter(status=AccessStatus.ACTIVE).count() == 1


def test_configuration_is_saved_through_the_service(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    browser = member_browser(world.customer, "developer")

    response = browser.post(
        f"/portal/subscriptions/{issued.access.pk}/configuration/",
        {
            "branding_name": "Acme helper",
            "branding_welcome_message": "Hello from Acme",
            "widget_position": "bottom-left",
            "primary_color": "#112233",
            "allowed_domains_text": "acme.example, shop.acme.example",
        },
    )

    configuration = issued.access.configuration
    configuration.refresh_from_db()
    assert response.status_code == 302
    assert configuration.branding_name == "Acme helper"
    assert configuration.widget_theme == {"primary_color": "#112233"}
    # A bare name is an https origin, as the API stores it (its rule, OriginListField).
    assert configuration.allowed_domains == ["https://acme.example", "https://shop.acme.example"]


def test_a_bad_configuration_is_refused_with_the_fields_message(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    browser = member_browser(world.customer, "developer")

    response = browser.post(
        f"/portal/subscriptions/{issued.access.pk}/configuration/",
        {"widget_position": "bottom-left", "temperature": "5"},
    )

    assert response.status_code == 400
    assert "less than or equal to 2" in response.content.decode()


# --- Usage ----------------------------------------------------------------------------


def test_usage_shows_the_months_totals_and_exports_csv_of_the_organisation_only(world):
    today = datetime.now(UTC).date()
    mine = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    theirs = access_create(agent=world.agent, plan=world.free_plan, project=world.outsider_project)
    summary(mine.access, today, calls=3, cost=Decimal("150"))
    summary(theirs.access, today, calls=7)
    browser = member_browser(world.customer, "viewer")

    html = browser.get("/portal/usage/").content.decode()
    export = browser.get("/portal/usage/export.csv").content.decode().splitlines()

    assert "<strong>3</strong> calls · 30 tokens · cost 1.50 USD" in html
    assert "Export CSV" in html
    assert 'id="usage-chart-data"' in html
    assert len(export) == 2
    assert export[1].split(",")[2] == "helper-bot"
    assert export[1].split(",")[5] == "3"


def test_a_bad_month_is_explained(world):
    response = member_browser(world.customer, "viewer").get("/portal/usage/", {"month": "May"})

    assert response.status_code == 400
    assert "Use YYYY-MM" in response.content.decode()


# --- Team -----------------------------------------------------------------------------


def test_the_team_page_lists_members_and_an_owner_invites(world):
    owner = factories.member(world.customer, "owner", username="olivia")
    factories.member(world.customer, "viewer", username="victor")
    browser = browser_of(owner)

    listed = browser.get("/portal/team/").content.decode()
    invited = browser.post("/portal/team/", {"username": "newcomer", "role": "developer"})

    assert "olivia" in listed
    assert "victor" in listed
    assert invited.status_code == 302
    assert "newcomer" in browser.get("/portal/team/").content.decode()


def test_an_admin_invites_and_changes_the_roles_of_members_and_admins(world):
    factories.member(world.customer, "viewer", username="victor")
    factories.member(world.customer, "admin", username="ada")
    browser = member_browser(world.customer, "admin")

    invited = browser.post("/portal/team/", {"username": "newcomer", "role": "developer"})
    promoted = browser.post("/portal/team/", {"username": "victor", "role": "admin"})
    demoted = browser.post("/portal/team/", {"username": "ada", "role": "viewer"})

    assert [r.status_code for r in (invited, promoted, demoted)] == [302, 302, 302]
    roles = {
        m.user.username: m.role for m in TenantMembership.objects.filter(tenant=world.customer)
    }
    assert (roles["victor"], roles["ada"]) == ("admin", "viewer")
    assert TenantInvitation.objects.get(tenant=world.customer, username="newcomer").role == (
        "developer"
    )


def test_the_owner_role_is_the_owners_and_an_admin_is_told_so_in_words(world):
    factories.member(world.customer, "owner", username="olga")
    factories.member(world.customer, "viewer", username="victor")
    browser = member_browser(world.customer, "admin")

    listed = browser.get("/portal/team/").content.decode()
    granted = browser.post("/portal/team/", {"username": "victor", "role": "owner"})
    demoted = browser.post("/portal/team/", {"username": "olga", "role": "viewer"})
    asked = browser.get("/portal/team/olga/remove/")
    removed = browser.post("/portal/team/olga/remove/")

    assert '<option value="owner"' not in listed  # not offered to an admin
    assert "Remove olga" not in listed
    assert "Remove victor" in listed
    for response in (granted, demoted, asked, removed):
        assert response.status_code == 403
        assert "Only an owner of tenant &#x27;acme&#x27; may grant the owner role" in (
            response.content.decode()
        )
    roles = dict(
        TenantMembership.objects.filter(tenant=world.customer).values_list("user__username", "role")
    )
    assert (roles["olga"], roles["victor"]) == ("owner", "viewer")


def test_an_owner_grants_and_takes_the_owner_role_but_one_owner_stays(world):
    owner = factories.member(world.customer, "owner", username="olivia")
    factories.member(world.customer, "admin", username="ada")
    browser = browser_of(owner)

    listed = browser.get("/portal/team/").content.decode()
    granted = browser.post("/portal/team/", {"username": "ada", "role": "owner"})
    demoted = browser.post("/portal/team/", {"username": "ada", "role": "admin"})
    alone = browser.post("/portal/team/", {"username": "olivia", "role": "admin"})

    assert '<option value="owner"' in listed
    assert (granted.status_code, demoted.status_code) == (302, 302)
    assert alone.status_code == 409
    assert "is the last owner of" in alone.content.decode()
    assert TenantMembership.objects.get(tenant=world.customer, user=owner).role == "owner"


def test_change_role_fills_in_the_form_with_the_member(world):
    factories.member(world.customer, "developer", username="dev1")
    browser = member_browser(world.customer, "admin")

    html = browser.get("/portal/team/", {"member": "dev1"}).content.decode()

    assert 'href="/portal/team/?member=dev1#invite-h">Change role of dev1</a>' in html
    assert 'value="dev1"' in html
    assert '<option value="developer" selected>' in html


def test_viewers_and_developers_do_not_change_the_team(world):
    for role in ("viewer", "developer"):
        browser = member_browser(world.customer, role)

        listed = browser.get("/portal/team/").content.decode()
        response = browser.post("/portal/team/", {"username": "someone", "role": "viewer"})

        assert "Invite or change a role" not in listed
        assert response.status_code == 403
        assert "This needs the admin role" in response.content.decode()
    assert not TenantInvitation.objects.filter(username="someone").exists()


def test_removing_a_member_asks_first(world):
    owner = factories.member(world.customer, "owner")
    factories.member(world.customer, "viewer", username="victor")
    browser = browser_of(owner)

    confirm = browser.get("/portal/team/victor/remove/")
    removed = browser.post("/portal/team/victor/remove/")

    assert b"Remove victor from Acme?" in confirm.content
    assert removed.status_code == 302
    assert "<td>victor</td>" not in browser.get("/portal/team/").content.decode()


def test_the_organisation_switcher_only_switches_to_ones_own(world):
    user = factories.member(world.customer, "owner")
    browser = browser_of(user)

    browser.post("/portal/switch/", {"tenant": "other", "next": "/portal/team/"})

    assert "Team · Acme" in browser.get("/portal/team/").content.decode()


def test_a_tag_on_a_card_filters_the_marketplace_by_it(world):
    factories.make_agent(project=world.agent.project, agent_id="poet", name="Poet", tags=["fun"])

    html = Client().get("/portal/").content.decode()
    by_tag = Client().get("/portal/", {"tag": "invoices"}).content.decode()

    assert 'href="/portal/?tag=invoices"' in html
    assert "Helper bot" in by_tag
    assert "Poet" not in by_tag


def test_a_wrong_password_is_said_in_words_and_logging_out_is_a_post(world):
    user = factories.member(world.customer, "owner", username="alice")
    user.set_password(PASSWORD)
    user.save()
    browser = Client()

    wrong = browser.post("/portal/login/", {"username": "alice", "password": "nope"})
    browser.post("/portal/login/", {"username": "alice", "password": PASSWORD})
    still_in = browser.get("/portal/logout/")
    out = browser.post("/portal/logout/")

    assert "The username or password is not right." in wrong.content.decode()
    assert still_in.status_code == 405
    assert out.status_code == 302
    assert browser.get("/portal/subscriptions/").status_code == 302
