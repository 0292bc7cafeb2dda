"""Which web origins a subscription's widget may run on (``AgentConfiguration.allowed_domains``).

An entry is one of:

- ``https://shop.example.com`` / ``http://localhost:3000`` — that exact origin (scheme,
  host and port; without a port, the scheme's default port);
- ``shop.example.com`` / ``shop.example.com:8443`` — the host over ``https`` only;
- ``*.example.com`` / ``https://*.example.com`` — any subdomain of ``example.com`` at any
  depth (``a.example.com``, ``a.b.example.com``), never ``example.com`` itself, never
  ``evil-example.com`` or ``example.com.evil.net``. The part after ``*.`` needs at
  least two labels (``*.com`` is refused).

An ``Origin`` header (``scheme://host[:port]``, as browsers send it) matches an entry
only if all three parts match. ``null``, paths, user info and anything unparsable
match nothing. Hosts compare in lower case; browsers send IDNs as punycode, so entries
are written in punycode too. Pure functions: the serializer, the services and the
gateway share them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_ENTRY_CHARS = 255
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ORIGIN = re.compile(r"^(https?)://(\[[0-9a-f:.]+\]|[^/:?#@\[\]\s]+)(?::(\d{1,5}))?$")


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        if self.port == DEFAULT_PORTS[self.scheme]:
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class DomainPattern:
    scheme: str  # "https" for an entry written without one
    host: str  # for a wildcard, the part after "*."
    port: int
    wildcard: bool

    def matches(self, origin: Origin) -> bool:
        if origin.scheme != self.scheme or origin.port != self.port:
            return False
        if not self.wildcard:
            return origin.host == self.host
        return (
            origin.host.endswith("." + self.host)
            and len(origin.host) > len(self.host) + 1
            and not _is_ip(origin.host)
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if len(host) > 253:
        return False
    return all(_LABEL.match(label) for label in host.split("."))


def _port(text: str | None, scheme: str) -> int | None:
    if text is None:
        return DEFAULT_PORTS[scheme]
    port = int(text)
    return port if 0 < port < 65536 else None


def parse_origin(value: str | None) -> Origin | None:
    """The ``Origin`` header's parts, or None when it names no usable origin."""
    if not value or len(value) > MAX_ENTRY_CHARS:
        return None
    match = _ORIGIN.match(value.strip().lower())
    if match is None:
        return None
    scheme, host, port_text = match.groups()
    port = _port(port_text, scheme)
    if port is None or not _valid_host(host):
        return None
    return Origin(scheme=scheme, host=host, port=port)


def parse_pattern(entry: str) -> DomainPattern | None:
    """One ``allowed_domains`` entry, or None if it is not one of the forms above."""
    if not isinstance(entry, str) or not entry or len(entry) > MAX_ENTRY_CHARS:
        return None
    text = entry.strip().lower().removesuffix("/")
    scheme = "https"
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme not in DEFAULT_PORTS:
            return None
    wildcard = text.startswith("*.")
    if wildcard:
        text = text[2:]
    origin = parse_origin(f"{scheme}://{text}")
    if origin is None:
        return None
    if wildcard and (_is_ip(origin.host) or origin.host.count(".") < 1):
        return None
    return DomainPattern(scheme=scheme, host=origin.host, port=origin.port, wildcard=wildcard)


def clean_entries(entries: Iterable[str]) -> list[str]:
    """The entries as stored (lower case, no trailing slash); ValueError names a bad one."""
    cleaned = []
    for entry in entries:
        if parse_pattern(entry) is None:
            shown = str(entry)[:100]
            raise ValueError(
                f"'{shown}' is not an allowed domain: write an origin like "
                "https://shop.example.com, a host like shop.example.com, or a wildcard "
                "like *.example.com."
            )
        cleaned.append(entry.strip().lower().removesuffix("/"))
    return cleaned


def origin_allowed(origin: Origin | str | None, entries: Iterable[str]) -> bool:
    """Whether ``origin`` (parsed, or an ``Origin`` header) matches one of ``entries``."""
    parsed = parse_origin(origin) if isinstance(origin, str) or origin is None else origin
    if parsed is None:
        return False
    for entry in entries:
        pattern = parse_pattern(entry)
        if pattern is not None and pattern.matches(parsed):
            return True
    return False
