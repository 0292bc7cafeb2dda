"""Training documents of a subscription over the API: upload with checks, list, delete."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agent_registry.access import documents, services
from agent_registry.access.models import TrainingDocument
from agent_registry.core.errors import ValidationFailed
from tests import factories

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n"
DOCX = b"PK\x03\x04" + b"\x00" * 40
MARKDOWN = "# Returns\n\nWithin 30 days — no questions asked.\n".encode()


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


@pytest.fixture
def access(project):
    return factories.make_subscription(project=project, agent=factories.make_agent()).access


def documents_url(access) -> str:
    return f"/api/v1/subscriptions/{access.id}/documents/"


def upload(client, access, name: str, content: bytes, content_type: str = "text/plain"):
    file = SimpleUploadedFile(name, content, content_type=content_type)
    return client.post(documents_url(access), {"file": file}, format="multipart")


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("guide.pdf", PDF, "application/pdf"),
        ("notes.txt", b"Opening hours: 9-17.", "text/plain"),
        ("faq.md", MARKDOWN, "text/markdown"),
        (
            "manual.docx",
            DOCX,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ],
)
def test_a_developer_uploads_each_kind_and_it_is_kept_with_its_checksum(
    member_client, access, media, name, content, kind
):
    client = member_client("developer")

    response = upload(client, access, name, content, content_type="application/octet-stream")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["original_name"] == name
    assert body["content_type"] == kind  # from the name and content, not the client's header
    assert body["size_bytes"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    document = TrainingDocument.objects.get(pk=body["id"])
    assert document.access_id == access.id
    stored = media / document.file.name
    assert stored.read_bytes() == content
    assert str(access.id) in document.file.name
    assert name not in document.file.name  # the customer's name never becomes a path


def test_the_list_shows_the_subscriptions_documents_newest_first(member_client, access):
    client = member_client("developer")
    upload(client, access, "a.txt", b"first")
    upload(client, access, "b.txt", b"second")
    other = factories.make_subscription(project=access.project, agent=factories.make_agent())
    upload(client, other.access, "elsewhere.txt", b"other")

    response = member_client("viewer").get(documents_url(access))

    assert response.status_code == 200
    assert [d["original_name"] for d in response.json()["results"]] == ["b.txt", "a.txt"]


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("run.exe", b"MZ\x90\x00", "Only these kinds"),
        ("fake.pdf", b"<html>not a pdf</html>", "not a PDF"),
        ("fake.docx", b"plain words", "not a Word"),
        ("latin1.txt", "café".encode("latin-1"), "UTF-8"),
        ("nul.md", b"a\x00b", "NUL"),
        ("empty.txt", b"", "empty"),
        ("noextension", b"words", "Only these kinds"),
    ],
)
def test_a_bad_file_is_refused_in_words_and_nothing_is_kept(
    member_client, access, media, name, content, says
):
    response = upload(member_client("developer"), access, name, content)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert says in " ".join(error["details"]["file"])
    assert not TrainingDocument.objects.exists()
    assert not list(media.rglob("*.*"))


def test_a_name_with_invisible_characters_is_refused(access):
    """Django's parser already cleans most names; the service does not rely on it."""
    upload = SimpleUploadedFile("bad\u202ename.txt", b"w")

    with pytest.raises(ValidationFailed) as refused:
        services.training_document_upload(access=access, upload=upload)

    assert "invisible" in refused.value.details["file"][0]
    assert not TrainingDocument.objects.exists()


@pytest.mark.parametrize(
    ("name", "says"),
    [("x" * 256, "longer than 255"), ("../", "no name"), ("..", "no name"), ("", "no name")],
)
def test_a_name_that_cannot_be_shown_is_refused(name, says):
    with pytest.raises(ValidationFailed) as refused:
        documents.clean_name(name)

    assert says in refused.value.details["file"][0]


def test_a_path_in_the_name_is_dropped():
    assert documents.clean_name("C:\\Users\\me\\faq.md") == "faq.md"
    assert documents.clean_name("/etc/guide.pdf") == "guide.pdf"


def test_a_file_past_the_size_limit_is_refused(member_client, access, settings):
    settings.TRAINING_DOCUMENT_MAX_BYTES = 10

    response = upload(member_client("developer"), access, "long.txt", b"x" * 11)

    assert response.status_code == 400
    assert "limit is 10 bytes" in response.json()["error"]["details"]["file"][0]
    assert not TrainingDocument.objects.exists()


def test_a_kind_the_settings_leave_out_is_refused(member_client, access, settings):
    settings.TRAINING_DOCUMENT_EXTENSIONS = ["txt"]

    response = upload(member_client("developer"), access, "guide.pdf", PDF)

    assert response.status_code == 400
    assert response.json()["error"]["details"]["file"] == [
        "Only these kinds of file are taken: .txt."
    ]


def test_the_same_content_twice_is_a_conflict(member_client, access):
    client = member_client("developer")
    assert upload(client, access, "a.txt", b"same").status_code == 201

    response = upload(client, access, "b.txt", b"same")

    assert response.status_code == 409
    assert TrainingDocument.objects.count() == 1


def test_past_the_count_limit_an_upload_is_a_conflict(member_client, access, settings):
    settings.TRAINING_DOCUMENTS_PER_SUBSCRIPTION = 1
    client = member_client("developer")
    assert upload(client, access, "a.txt", b"one").status_code == 201

    response = upload(client, access, "b.txt", b"two")

    assert response.status_code == 409
    assert "at most 1" in response.json()["error"]["message"]


def test_a_revoked_subscription_takes_no_documents(member_client, access):
    services.access_revoke(access=access, reason="done")

    response = upload(member_client("developer"), access, "a.txt", b"late")

    assert response.status_code == 409
    assert not TrainingDocument.objects.exists()


def test_a_json_body_or_no_file_is_a_field_error(member_client, access):
    client = member_client("developer")

    as_json = client.post(documents_url(access), {"file": "text"}, format="json")
    no_file = client.post(documents_url(access), {}, format="multipart")

    assert as_json.status_code == 400
    assert "file" in as_json.json()["error"]["details"]
    assert no_file.status_code == 400
    assert "file" in no_file.json()["error"]["details"]


def test_a_viewer_may_list_but_not_upload_or_delete(member_client, access):
    document = services.training_document_upload(
        access=access, upload=SimpleUploadedFile("a.txt", b"kept")
    )
    viewer = member_client("viewer")

    uploaded = upload(viewer, access, "b.txt", b"new")
    deleted = viewer.delete(f"{documents_url(access)}{document.id}/")

    assert uploaded.status_code == 403
    assert deleted.status_code == 403
    assert TrainingDocument.objects.count() == 1


def test_deleting_removes_the_row_and_the_stored_file(
    member_client, access, media, django_capture_on_commit_callbacks
):
    client = member_client("developer")
    created = upload(client, access, "a.txt", b"to go").json()
    stored = media / TrainingDocument.objects.get(pk=created["id"]).file.name
    assert stored.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"{documents_url(access)}{created['id']}/")

    assert response.status_code == 204
    assert not TrainingDocument.objects.exists()
    assert not stored.exists()


def test_another_tenants_subscription_and_documents_are_not_found(member_client, access):
    document = services.training_document_upload(
        access=access, upload=SimpleUploadedFile("a.txt", b"private")
    )
    stranger = member_client("admin", of=factories.TenantFactory(slug="globex"))

    listed = stranger.get(documents_url(access))
    uploaded = upload(stranger, access, "b.txt", b"intrusion")
    deleted = stranger.delete(f"{documents_url(access)}{document.id}/")

    assert [listed.status_code, uploaded.status_code, deleted.status_code] == [404, 404, 404]
    assert TrainingDocument.objects.count() == 1


def test_a_document_id_of_another_subscription_is_not_found(member_client, access):
    other = factories.make_subscription(project=access.project, agent=factories.make_agent())
    document = services.training_document_upload(
        access=other.access, upload=SimpleUploadedFile("a.txt", b"theirs")
    )

    response = member_client("developer").delete(f"{documents_url(access)}{document.id}/")

    assert response.status_code == 404
    assert TrainingDocument.objects.filter(pk=document.pk).exists()


def test_malformed_ids_are_not_found(member_client, access):
    client = member_client("developer")

    assert client.get("/api/v1/subscriptions/not-a-uuid/documents/").status_code == 404
    assert client.delete(f"{documents_url(access)}not-a-uuid/").status_code == 404


# --- admin ------------------------------------------------------------------------------


def test_the_admin_lists_shows_and_deletes_a_document_with_its_file(
    admin_browser, access, media, django_capture_on_commit_callbacks
):
    from tests.admin_support import add_url, change_url, changelist_url, delete_url

    document = services.training_document_upload(
        access=access, upload=SimpleUploadedFile("faq.md", b"# FAQ")
    )
    stored = media / document.file.name

    listed = admin_browser.get(changelist_url(TrainingDocument))
    shown = admin_browser.get(change_url(document))
    adding = admin_browser.get(add_url(TrainingDocument))
    with django_capture_on_commit_callbacks(execute=True):
        deleted = admin_browser.post(delete_url(document), {"post": "yes"})

    assert listed.status_code == 200
    assert "faq.md" in listed.content.decode()
    assert shown.status_code == 200
    assert document.sha256 in shown.content.decode()
    assert adding.status_code == 403  # uploads go through the checks, not a form here
    assert deleted.status_code == 302
    assert not TrainingDocument.objects.exists()
    assert not stored.exists()
