"""What a training document may be: its kind, told by name and by content alike.

The client's ``Content-Type`` is not trusted: the extension chooses the kind and the
first bytes must agree with it (a renamed executable is not a PDF).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from django.conf import settings

from agent_registry.core.errors import ValidationFailed


@dataclass(frozen=True)
class DocumentKind:
    content_type: str
    label: str
    magic: bytes | None  # the first bytes every such file starts with; None = UTF-8 text


KINDS: dict[str, DocumentKind] = {
    "pdf": DocumentKind("application/pdf", "PDF", b"%PDF-"),
    "txt": DocumentKind("text/plain", "text", None),
    "md": DocumentKind("text/markdown", "Markdown", None),
    # A .docx is a ZIP container; the old binary .doc is not taken.
    "docx": DocumentKind(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "Word",
        b"PK\x03\x04",
    ),
}
MAX_NAME_LENGTH = 255


def allowed_extensions() -> list[str]:
    """The kinds the settings allow, each one the registry knows how to check."""
    return [ext for ext in settings.TRAINING_DOCUMENT_EXTENSIONS if ext in KINDS]


def accept_attribute() -> str:
    """For the portal's file input: ``.pdf,.txt,…``."""
    return ",".join(f".{ext}" for ext in allowed_extensions())


def clean_name(name: str) -> str:
    """The file name as shown: the last path part, no control or invisible characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in {".", ".."}:
        raise ValidationFailed(details={"file": ["The file has no name."]})
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(
            details={"file": [f"The file name is longer than {MAX_NAME_LENGTH} characters."]}
        )
    if any(unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn"} for char in name):
        raise ValidationFailed(
            details={"file": ["The file name contains control or invisible characters."]}
        )
    return name


def kind_of(name: str, head: bytes, content: bytes) -> DocumentKind:
    """The kind of a file named ``name`` whose content is ``content``, or a 400."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    allowed = allowed_extensions()
    if extension not in allowed:
        listed = ", ".join(f".{ext}" for ext in allowed)
        raise ValidationFailed(details={"file": [f"Only these kinds of file are taken: {listed}."]})
    kind = KINDS[extension]
    if kind.magic is not None:
        if not head.startswith(kind.magic):
            raise ValidationFailed(
                details={"file": [f"The file's content is not a {kind.label} document."]}
            )
        return kind
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed(
            details={"file": [f"A {kind.label} file must be UTF-8 text."]}
        ) from None
    if "\x00" in text:
        raise ValidationFailed(details={"file": [f"A {kind.label} file cannot contain NUL."]})
    return kind
