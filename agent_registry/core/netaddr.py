"""Which runtime endpoints the registry may call: one set of rules for registration
(agents/runtime.py) and for the gateway at call time (gateway/http_client.py).

The URL rules hold always: http or https, an explicit port in 1-65535, no credentials,
no whitespace or control characters anywhere, a host that is a DNS name or an address.

The address rules hold unless ``RUNTIME_ALLOW_PRIVATE_NETWORKS``: the host must not be,
in any spelling a resolver accepts, a loopback, private, link-local, shared (CGNAT),
multicast, unspecified, documentation, benchmarking or otherwise reserved address, nor
one of the names that always mean this machine or its local network. "Any spelling"
means what glibc's ``inet_aton`` (used by ``getaddrinfo``) makes of a name of digits:
``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1`` and ``0`` are all addresses.
Such a name must be written as a dotted quad (so every parser reads it the same);
an IPv6 address that carries an IPv4 one (mapped, 6to4, NAT64) is judged by the IPv4
address it carries; zone ids are refused.

A DNS name cannot be judged without resolving it: the gateway resolves it at call time,
checks every answer with ``is_public_ip`` and connects only to the addresses it checked.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

import yarl

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that always mean this machine or a local network (RFC 6761, 6762, 8375; ICANN's
# ".internal", e.g. metadata.google.internal → 169.254.169.254).
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_LOCAL_SUFFIXES = (".localhost", ".localdomain", ".local", ".internal", ".home.arpa")

# Never public, whatever the Python version's ``is_global`` says (its tables changed
# between releases). IPv6 must also lie in 2000::/3, the global unicast space.
_NEVER_PUBLIC = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (CGNAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local: cloud metadata lives here
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "64:ff9b:1::/48",  # local-use NAT64
        "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
    )
)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")

# One part of an inet_aton address, as strtoul(…, 0) reads it: hex, octal or decimal.
_AT_ON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
_PART_LIMITS = (0xFFFFFFFF, 0xFFFFFF, 0xFFFF, 0xFF)  # the last part, by number of parts
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")

PRIVATE_REFUSAL = (
    "Loopback, private, link-local, multicast and other non-public addresses are refused "
    "(set RUNTIME_ALLOW_PRIVATE_NETWORKS=true to allow them)."
)


class EndpointRefused(ValueError):
    """A runtime endpoint the rules refuse; the message says why (for the provider)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str  # as the HTTP client will use it: IDNA-encoded, lower case, no brackets
    port: int


def inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address glibc's ``inet_aton`` reads in ``text`` (None: not an address).

    One to four parts; each decimal, octal (leading 0) or hex (0x); the last part fills
    the bytes that are left: ``127.1`` is 127.0.0.1 and ``2130706433`` is too.
    """
    parts = text.split(".")
    if len(parts) > 4 or not all(part.isascii() and _AT_ON_PART.fullmatch(part) for part in parts):
        return None
    values = [
        int(part, 0) if part[:2].lower() == "0x" else int(part, 8 if part[0] == "0" else 10)
        for part in parts
    ]
    *leading, last = values
    if any(value > 0xFF for value in leading) or last > _PART_LIMITS[len(leading)]:
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (24 - 8 * index)
    return ipaddress.IPv4Address(number)


def host_address(host: str) -> Address | None:
    """The address ``host`` stands for when a resolver reads it as one, else None.

    Brackets and one trailing dot are ignored; an IPv6 zone id is kept (and refused by
    ``is_public_address``).
    """
    text = host.strip().removeprefix("[").removesuffix("]")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return inet_aton(text.removesuffix("."))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches through mapping, 6to4 or NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: Address) -> bool:
    """True only for a globally routable unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
        if address not in _GLOBAL_UNICAST_V6 or address.is_site_local:
            return False  # also IPv4-compatible (::/96) and SIIT (::ffff:0:0:0/96)
    if any(address in network for network in _NEVER_PUBLIC):
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
    )


def is_public_ip(text: str) -> bool:
    """``is_public_address`` for a textual address (a DNS answer); False if not one."""
    try:
        return is_public_address(ipaddress.ip_address(text))
    except ValueError:
        return False


def _is_local_name(name: str) -> bool:
    name = name.lower().rstrip(".")
    return name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES)


def _numeric_name(name: str) -> bool:
    """A name whose last label is a number: no DNS name's is (RFC 1123), but a resolver
    may read the name as an address."""
    last = name.rstrip(".").rpartition(".")[2].lower()
    return bool(_NUMERIC_LABEL.fullmatch(last))


def host_refusal(host: str) -> str | None:
    """Why the address rules refuse ``host``, or None when it may be public.

    None for a public literal and for a DNS name, which only resolving can judge.
    """
    address = host_address(host)
    if address is not None:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            return "An IPv6 zone id is not allowed in a runtime endpoint."
        if not is_public_address(address):
            return PRIVATE_REFUSAL
        if isinstance(address, ipaddress.IPv4Address) and host.rstrip(".") != str(address):
            return "Write an IPv4 address as four decimal numbers (a.b.c.d)."
        return None
    if _is_local_name(host):
        return PRIVATE_REFUSAL
    if _numeric_name(host):
        return "The host is neither a DNS name nor an IPv4 address."
    return None


def is_private_address(host: str) -> bool:
    """True when ``host`` is, or is written as, a non-public address or a local name."""
    return host_refusal(host) is not None


def _bad_character(url: str) -> bool:
    # Control (Cc), format (Cf: bidi overrides, zero-width), unassigned and private-use
    # characters, every kind of space, and the backslash some parsers read as "/".
    return any(
        char.isspace() or char == "\\" or unicodedata.category(char)[0] == "C" for char in url
    )


def _explicit_port(netloc: str) -> str | None:
    """The port as written in the authority (None when there is none)."""
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        _, _, rest = hostport.partition("]")
        return rest[1:] if rest.startswith(":") else None
    _, colon, port = hostport.rpartition(":")
    return port if colon else None


def _valid_name(host: str) -> bool:
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def parse_endpoint(url: str, *, allow_private: bool) -> Endpoint:
    """The endpoint ``url`` names, or ``EndpointRefused`` saying which rule it breaks."""
    endpoint_or_reason = _parse(url, allow_private)
    if isinstance(endpoint_or_reason, str):
        raise EndpointRefused(endpoint_or_reason)
    return endpoint_or_reason


@functools.lru_cache(maxsize=1024)  # the gateway checks the same few URLs on every call
def _parse(url: str, allow_private: bool) -> Endpoint | str:
    if _bad_character(url):
        return "May not contain spaces, line breaks or other control characters."
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[IPv6" host
        return "Must be an http(s) URL."
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return "Must be an http(s) URL."
    if "@" in parts.netloc:
        return "Credentials do not belong in the URL; use api_key_ref."
    written_port = _explicit_port(parts.netloc)  # "host:" (empty) is the default port
    if written_port and not (_PORT.fullmatch(written_port) and 1 <= int(written_port) <= 65535):
        return "The port must be a number from 1 to 65535."
    try:
        parsed = yarl.URL(url)  # what the HTTP client (aiohttp) will connect to
    except ValueError:
        return "Must be an http(s) URL."
    host = parsed.raw_host or ""
    port = parsed.port
    if not host or port is None:
        return "Must be an http(s) URL."
    if ":" in host:
        if host_address(host) is None:
            return "The host is not a valid IPv6 address."
    elif not _valid_name(host):
        return "The host is not a valid host name or address."
    if not allow_private:
        refusal = host_refusal(host)
        if refusal is not None:
            return refusal
    return Endpoint(scheme=parts.scheme, host=host, port=port)
