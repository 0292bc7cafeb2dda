"""In a real browser: a customer uploads a training document, sees it listed, and
deletes it after confirming (screenshots as artifacts, like the other flows)."""

from __future__ import annotations

import pytest

from agent_registry.access.models import TrainingDocument
from agent_registry.access.services import access_create
from agent_registry.agents.models import BillingModel
from tests import factories
from tests.gateway.conftest import live_gateway  # noqa: F401  (the server fixture)
from tests.portal.browser import chromium, log_in, needs_chromium, open_tab  # noqa: F401
from tests.portal.conftest import PASSWORD

pytestmark = [needs_chromium, pytest.mark.slow]


def test_a_customer_uploads_lists_and_deletes_a_training_document(
    live_gateway,  # noqa: F811
    chromium,  # noqa: F811
    settings,
    tmp_path,
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    tenant = factories.TenantFactory(slug="acme", name="Acme")
    project = factories.ProjectFactory(tenant=tenant, name="Website")
    agent = factories.make_agent(project=project, agent_id="helper", name="Helper")
    plan = factories.make_plan(agent, name="Free", billing_model=BillingModel.FREE)
    access = access_create(agent=agent, plan=plan, project=project).access
    user = factories.member(tenant, "developer", username="dora")
    user.set_password(PASSWORD)
    user.save()
    faq = tmp_path / "faq.md"
    faq.write_text("# Returns\n\nWithin 30 days.\n")
    tab = open_tab(chromium, live_gateway.url)
    page = tab.page
    log_in(tab, "dora", PASSWORD)

    tab.go(f"/portal/subscriptions/{access.pk}/")
    page.get_by_label("Document file").set_input_files(str(faq))
    page.get_by_role("button", name="Upload").click()
    page.get_by_text("Uploaded faq.md.").wait_for()
    tab.shot("documents-01-uploaded")
    assert page.get_by_role("cell", name="faq.md", exact=True).count() == 1
    assert TrainingDocument.objects.get().content_type == "text/markdown"

    page.get_by_role("link", name="Delete faq.md").click()
    page.get_by_role("heading", name="Delete this training document?").wait_for()
    tab.shot("documents-02-confirm-delete")
    page.get_by_role("button", name="Delete").click()
    page.get_by_text("Deleted faq.md.").wait_for()
    tab.shot("documents-03-deleted")

    assert page.get_by_text("No training documents yet.").count() == 1
    assert not TrainingDocument.objects.exists()
    assert tab.errors == []
