"""The runtime endpoint rules (core/netaddr.py), shared by registration and the gateway.

Every spelling of a non-public address is refused, the URL rules hold with or without
RUNTIME_ALLOW_PRIVATE_NETWORKS, and names of digits are read as glibc reads them.
"""

from __future__ import annotations

import ipaddress
import platform
import socket

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent_registry.core import netaddr
from agent_registry.core.netaddr import EndpointRefused, parse_endpoint

NON_PUBLIC_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
PUBLIC_V4 = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "151.101.1.69"]


def refusal(url: str, *, allow_private: bool = False) -> str | None:
    try:
        parse_endpoint(url, allow_private=allow_private)
    except EndpointRefused as refused:
        return str(refused)
    return None


# --- Every spelling of a non-public IPv4 address ------------------------------------


def _part(value: int, radix: str) -> str:
    return {"dec": str(value), "oct": f"0{value:o}", "hex": f"0x{value:x}"}[radix]


def spell(address: ipaddress.IPv4Address, kind: str, radixes: list[str]) -> str:
    """``address`` as a URL host, the way ``kind`` writes it."""
    n = int(address)
    a, b, c, d = address.packed
    if kind == "dotted":
        return ".".join(_part(x, r) for x, r in zip((a, b, c, d), radixes, strict=False))
    if kind == "one number":
        return _part(n, radixes[0])
    if kind == "a.b.16bits":
        return ".".join([_part(a, radixes[0]), _part(b, radixes[1]), _part(n & 0xFFFF, radixes[2])])
    if kind == "a.24bits":
        return ".".join([_part(a, radixes[0]), _part(n & 0xFFFFFF, radixes[1])])
    if kind == "trailing dot":
        return f"{address}."
    if kind == "mapped":
        return f"[::ffff:{address}]"
    if kind == "mapped hex":
        return f"[::ffff:{n >> 16:x}:{n & 0xFFFF:x}]"
    if kind == "compatible":
        return f"[::{address}]"
    if kind == "nat64":
        return f"[64:ff9b::{address}]"
    if kind == "6to4":
        return f"[2002:{n >> 16:x}:{n & 0xFFFF:x}::1]"
    raise AssertionError(kind)


SPELLINGS = [
    "dotted",
    "one number",
    "a.b.16bits",
    "a.24bits",
    "trailing dot",
    "mapped",
    "mapped hex",
    "compatible",
    "nat64",
    "6to4",
]


@st.composite
def non_public_ipv4(draw) -> ipaddress.IPv4Address:
    network = ipaddress.IPv4Network(draw(st.sampled_from(NON_PUBLIC_V4)))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return network[offset]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    address=non_public_ipv4(),
    kind=st.sampled_from(SPELLINGS),
    radixes=st.lists(st.sampled_from(["dec", "oct", "hex"]), min_size=4, max_size=4),
    scheme=st.sampled_from(["http", "https"]),
)
@example(ipaddress.IPv4Address("127.0.0.1"), "one number", ["dec"] * 4, "http")  # 2130706433
@example(ipaddress.IPv4Address("127.0.0.1"), "one number", ["hex"] * 4, "http")  # 0x7f000001
@example(ipaddress.IPv4Address("127.0.0.1"), "dotted", ["hex"] + ["dec"] * 3, "http")
@example(ipaddress.IPv4Address("127.0.0.1"), "dotted", ["oct"] + ["dec"] * 3, "http")
@example(ipaddress.IPv4Address("127.0.0.1"), "a.24bits", ["dec"] * 4, "http")  # 127.1
@example(ipaddress.IPv4Address("10.0.0.1"), "a.24bits", ["dec"] * 4, "http")  # 10.1
@example(ipaddress.IPv4Address("169.254.169.254"), "dotted", ["dec"] * 4, "http")
@example(ipaddress.IPv4Address("0.0.0.0"), "one number", ["dec"] * 4, "http")  # noqa: S104 — "0"
def test_every_spelling_of_a_non_public_ipv4_address_is_refused(address, kind, radixes, scheme):
    url = f"{scheme}://{spell(address, kind, radixes)}:8080/run"

    assert refusal(url) is not None, url


NON_PUBLIC_V6 = [
    "::/127",  # unspecified and loopback
    "::/96",  # IPv4-compatible
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    network=st.sampled_from(NON_PUBLIC_V6),
    offset=st.integers(min_value=0, max_value=2**128),
    form=st.sampled_from(["compressed", "exploded", "upper"]),
)
def test_every_non_public_ipv6_address_is_refused_however_it_is_written(network, offset, form):
    net = ipaddress.IPv6Network(network)
    address = net[offset % net.num_addresses]
    text = {
        "compressed": address.compressed,
        "exploded": address.exploded,
        "upper": address.compressed.upper(),
    }[form]

    assert refusal(f"https://[{text}]:443/") is not None, text


@pytest.mark.parametrize("address", PUBLIC_V4)
def test_a_public_address_in_dotted_decimal_is_accepted(address):
    assert refusal(f"https://{address}/v1") is None
    assert refusal(f"https://[::ffff:{address}]/v1") is None  # reaches that same address
    assert refusal(f"https://[64:ff9b::{address}]/v1") is None  # through the NAT64 gateway


@pytest.mark.parametrize("host", ["134744072", "0x08080808", "8.8.2056", "010.8.8.8"])
def test_a_public_address_in_another_spelling_must_be_written_as_a_dotted_quad(host):
    assert "four decimal numbers" in (refusal(f"https://{host}/") or "")


# --- IPv6 and names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "[::1]",
        "[::]",
        "[0:0:0:0:0:0:0:1]",
        "[fe80::1]",
        "[fe80::1%25eth0]",  # zone id
        "[fd00::1]",  # unique local
        "[fc00::1]",
        "[fec0::1]",  # site local
        "[ff02::1]",  # multicast
        "[2001:db8::1]",  # documentation
        "[2001::1]",  # Teredo
        "[64:ff9b:1::1]",  # local-use NAT64
        "[100::1]",  # discard
        "[::ffff:0:7f00:1]",  # SIIT
        "localhost",
        "LOCALHOST",
        "localhost.",
        "api.localhost",
        "ip6-localhost",
        "ip6-loopback",
        "localhost.localdomain",
        "printer.local",
        "metadata.google.internal",  # → 169.254.169.254
        "router.home.arpa",
    ],
)
def test_loopback_link_local_and_local_names_are_refused(host):
    assert refusal(f"http://{host}:8080/") is not None


@pytest.mark.parametrize(
    "host",
    ["1.2.3.4.5", "999.1.1.1", "08.1.1.1", "4294967296", "0x", "1.2.3.0x"],
)
def test_a_name_of_digits_that_is_not_an_address_is_refused(host):
    """No DNS name ends in a number (RFC 1123); a resolver may still read one as an address."""
    assert "neither a DNS name nor an IPv4 address" in (refusal(f"http://{host}/") or "")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "https://flows.example.com",
        "https://1e100.net/",
        "https://agents.example.com:8443/run?x=1",
        "https://bücher.example/",  # an IDN, connected to as its punycode
        "https://[2606:4700:4700::1111]/",
        "http://a.com:/x",  # an empty port is the default one
    ],
)
def test_public_names_and_addresses_are_accepted(url):
    assert refusal(url) is None


def test_the_endpoint_names_the_host_the_client_connects_to():
    assert parse_endpoint("https://Bücher.example/v1", allow_private=False) == netaddr.Endpoint(
        scheme="https", host="xn--bcher-kva.example", port=443
    )
    # Full-width digits are normalised to 127.0.0.1 by IDNA: judged as what they become.
    assert refusal("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/") is not None


# --- URL rules: always, whatever RUNTIME_ALLOW_PRIVATE_NETWORKS says ---------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://files.example.com/", "http(s) URL"),
        ("//example.com/", "http(s) URL"),
        ("example.com", "http(s) URL"),
        ("http:///run", "http(s) URL"),
        ("http://[::1", "http(s) URL"),
        ("http://[127.0.0.1]/", "http(s) URL"),
        ("http://example.com:0/", "port"),
        ("http://example.com:65536/", "port"),
        ("http://example.com:99999999999/", "port"),
        ("http://example.com:abc/", "port"),
        ("http://example.com:+80/", "port"),
        ("http://example.com:-1/", "port"),
        ("http://example.com:\uff18\uff10/", "port"),  # full-width digits
        ("http://[2606:4700::1111]:0/", "port"),
        ("http://user:pw@example.com/", "Credentials"),
        ("http://user@example.com/", "Credentials"),
        ("http://@example.com/", "Credentials"),
        ("http://example.com\r\nX-Injected: 1/", "control characters"),
        ("http://example.com/\nrun", "control characters"),
        ("http://exa mple.com/", "control characters"),
        ("http://example.com/a b", "control characters"),
        ("http://example.com/\trun", "control characters"),
        ("http://example.com/\x00", "control characters"),
        ("http://example.com/\x7f", "control characters"),
        ("http://example.com/\u202erun", "control characters"),  # bidi override
        ("http://exa\u200bmple.com/", "control characters"),  # zero-width space
        ("http://example.com\u00a0/", "control characters"),  # no-break space
        ("http://evil.example\\@good.example/", "control characters"),  # backslash
        ("http://127%2e0.0.1/", "not a valid host name"),
        ("http://exa_mple..com/", "not a valid host name"),
        ("http://-bad-.example.com/", "not a valid host name"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_the_url_rules_hold_with_or_without_private_networks(url, reason, allow_private):
    assert reason in (refusal(url, allow_private=allow_private) or "accepted"), url


def test_private_networks_may_be_allowed_by_setting():
    for url in [
        "http://127.0.0.1:7860",
        "http://localhost:8080/run",
        "http://[::1]/",
        "http://127.1/",
    ]:
        assert refusal(url, allow_private=True) is None, url


# --- inet_aton reads names of digits as glibc does ----------------------------------------


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="compares with glibc's resolver")
@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=20))
@example("0x7f.1")
@example("0177.0.0.1")
@example("4294967295")
@example("0x")
@example("08")
def test_inet_aton_reads_a_name_as_glibcs_getaddrinfo_does(text):
    try:
        infos = socket.getaddrinfo(text, None, socket.AF_INET, 0, 0, socket.AI_NUMERICHOST)
        expected = ipaddress.IPv4Address(infos[0][4][0])
    except (socket.gaierror, UnicodeError):
        expected = None

    assert netaddr.inet_aton(text) == expected


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("64:ff9b::808:808", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("192.88.99.1", False),
        ("::ffff:127.0.0.1", False),
        ("::127.0.0.1", False),
        ("64:ff9b::a00:1", False),
        ("2002:a00:1::1", False),
        ("2002:7f00:1::", False),
        ("fe80::1%eth0", False),
        ("ff0e::1", False),
        ("fec0::1", False),
        ("not an address", False),
    ],
)
def test_dns_answers_are_judged_by_the_same_rules(address, public):
    assert netaddr.is_public_ip(address) is public
