"""Training documents on the portal's subscription page: upload, list, delete after
confirmation — through the API's services, roles and tenant scoping."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agent_registry.access.models import TrainingDocument
from tests import factories
from tests.portal.conftest import member_browser

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


@pytest.fixture
def access(world):
    return factories.make_subscription(project=world.customer_project, agent=world.agent).access


def page_of(access) -> str:
    return f"/portal/subscriptions/{access.id}/"


def upload(browser, access, name: str, content: bytes):
    return browser.post(f"{page_of(access)}documents/", {"file": SimpleUploadedFile(name, content)})


def test_the_subscription_page_offers_a_labelled_upload_for_the_allowed_kinds(world, access):
    html = member_browser(world.customer, "developer").get(page_of(access)).content.decode()

    assert '<h2 id="documents-h">Training documents</h2>' in html
    assert '<label for="document-file">Document file</label>' in html
    assert 'accept=".pdf,.txt,.md,.docx"' in html
    assert '<button type="submit">Upload</button>' in html
    assert "No training documents yet." in html


def test_an_upload_is_kept_and_listed_with_its_checksum(world, access):
    browser = member_browser(world.customer, "developer")

    response = upload(browser, access, "faq.md", b"# Opening hours\n9-17")
    listed = browser.get(page_of(access)).content.decode()

    assert response.status_code == 302
    document = TrainingDocument.objects.get()
    assert document.access == access
    assert document.content_type == "text/markdown"
    assert "Uploaded faq.md." in listed
    assert "faq.md" in listed
    assert document.sha256[:10] in listed
    assert f"documents/{document.id}/delete/" in listed


def test_a_bad_file_is_explained_beside_the_upload_and_nothing_is_kept(world, access):
    browser = member_browser(world.customer, "developer")

    response = upload(browser, access, "virus.exe", b"MZ")

    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Only these kinds of file are taken: .pdf, .txt, .md, .docx." in html
    assert not TrainingDocument.objects.exists()


def test_a_viewer_sees_the_list_but_may_not_upload(world, access):
    upload(member_browser(world.customer, "developer"), access, "kept.txt", b"kept")
    viewer = member_browser(world.customer, "viewer")

    shown = viewer.get(page_of(access)).content.decode()
    response = upload(viewer, access, "a.txt", b"x")

    assert "kept.txt" in shown
    assert "Upload</button>" not in shown  # offered as require_role would answer
    assert "/delete/" not in shown.split("documents-h", 1)[1].split("</section>", 1)[0]

    assert response.status_code == 403
    assert "This needs the developer role in tenant &#x27;acme&#x27;." in response.content.decode()
    assert TrainingDocument.objects.count() == 1


def test_deleting_asks_first_then_removes_the_document(
    world, access, media, django_capture_on_commit_callbacks
):
    browser = member_browser(world.customer, "developer")
    upload(browser, access, "notes.txt", b"keep me?")
    document = TrainingDocument.objects.get()
    stored = media / document.file.name
    delete_url = f"{page_of(access)}documents/{document.id}/delete/"

    asked = browser.get(delete_url)
    assert asked.status_code == 200
    assert "Delete this training document?" in asked.content.decode()
    assert '<button type="submit" class="contrast">Delete</button>' in asked.content.decode()
    assert TrainingDocument.objects.exists()  # asking changes nothing

    with django_capture_on_commit_callbacks(execute=True):
        deleted = browser.post(delete_url)

    assert deleted.status_code == 302
    assert not TrainingDocument.objects.exists()
    assert not stored.exists()


def test_another_organisations_documents_are_not_found(world, access):
    upload(member_browser(world.customer, "developer"), access, "private.txt", b"ours")
    document = TrainingDocument.objects.get()
    outsider = member_browser(world.outsider, "owner")

    uploaded = upload(outsider, access, "x.txt", b"theirs")
    asked = outsider.get(f"{page_of(access)}documents/{document.id}/delete/")
    deleted = outsider.post(f"{page_of(access)}documents/{document.id}/delete/")

    assert [uploaded.status_code, asked.status_code, deleted.status_code] == [404, 404, 404]
    assert TrainingDocument.objects.count() == 1


def test_a_document_is_deleted_only_under_its_own_subscription(world, access):
    other = factories.make_subscription(
        project=world.customer_project, agent=factories.make_agent()
    )
    browser = member_browser(world.customer, "developer")
    upload(browser, other.access, "theirs.txt", b"other subscription")
    document = TrainingDocument.objects.get()

    response = browser.post(f"{page_of(access)}documents/{document.id}/delete/")

    assert response.status_code == 404
    assert TrainingDocument.objects.count() == 1
