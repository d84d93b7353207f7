"""Address parsing and normalization: fixed cases and Hypothesis properties."""

from __future__ import annotations

from email.headerregistry import Address as StdAddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.addresses import normalize, parse_address_list, parse_one


def keys(value: str) -> list[str]:
    return [a.normalized for a in parse_address_list(value)]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("alice@example.com", ["alice@example.com"]),
        ("Alice <ALICE@Example.COM>", ["alice@example.com"]),
        # An encoded word in the display name that decodes to an address stays a name.
        ("=?utf-8?q?eve=40evil=2Ecom?= <alice@example.com>", ["alice@example.com"]),
        ('"eve@evil.com" <alice@example.com>', ["alice@example.com"]),
        ("undisclosed-recipients:;", []),
        ("team: a@x.com, b@y.com;, c@z.com", ["a@x.com", "b@y.com", "c@z.com"]),
        ("alice@example.com (eve@evil.com)", ["alice@example.com"]),
        ("(eve@evil.com) alice@example.com", ["alice@example.com"]),
        ('"a@b"@example.com', ['"a@b"@example.com']),
        ('"john smith"@example.com', ['"john smith"@example.com']),
        # Needless quotes are the same address.
        ('"john"@example.com', ["john@example.com"]),
        # CVE-2023-27043 shapes: never the hidden mailbox.
        ("alice@x.com(<eve@evil.com>", ["alice@x.com"]),
        ("a@x.com@evil.com", []),
        ("<>", []),
        ("", []),
        (",,, ;; <<>> @@", []),
        ("J\u00f6rg <j\u00f6rg@b\u00fccher.de>", ["j\u00f6rg@xn--bcher-kva.de"]),
        ("Jörg <jörg@XN--BCHER-KVA.DE>", ["jörg@xn--bcher-kva.de"]),
        ("=?bogus?q?x?= <ok@z.com>", ["ok@z.com"]),
    ],
)
def test_parse_address_list(header: str, expected: list[str]) -> None:
    assert keys(header) == expected


def test_raw_utf8_header_bytes_decode_like_text() -> None:
    # A raw 8-bit header arrives from the bytes parser as surrogate escapes.
    escaped = "J\u00f6rg <j\u00f6rg@b\u00fccher.de>".encode().decode("ascii", "surrogateescape")
    assert keys(escaped) == ["j\u00f6rg@xn--bcher-kva.de"]


def test_folded_headers_keep_their_display_names() -> None:
    [first, second] = parse_address_list("a@b.cc ,\r\n Xavier <x@y.zz>")
    assert (second.display_name, second.normalized) == ("Xavier", "x@y.zz")
    assert first.normalized == "a@b.cc"


def test_domain_forms_are_one_key() -> None:
    assert normalize("a@BÜCHER.de.") == normalize("a@xn--bcher-kva.de") == "a@xn--bcher-kva.de"


def test_local_part_case_is_configurable() -> None:
    assert normalize("Bob@Example.com", "exact") == "Bob@example.com"
    assert normalize("Bob@Example.com", "lower") == "bob@example.com"


def test_local_part_never_accent_folded() -> None:
    assert normalize("jos\u00e9@x.com") != normalize("jose@x.com")
    # NFC and NFD spellings of the same letters are one address.
    assert normalize("jose\u0301@x.com") == normalize("jos\u00e9@x.com")


@pytest.mark.parametrize(
    "bad", ["", "no-at", "@x.com", "a@", "a b@x.com", "a@x..com", "a\x00@x.com", "a@[1.2.3"]
)
def test_normalize_refuses(bad: str) -> None:
    assert normalize(bad) is None


def test_parse_one_takes_exactly_one_address() -> None:
    one = parse_one("Carol <Carol@Client.com>")
    assert one is not None and one.normalized == "carol@client.com"
    assert parse_one("a@x.com, b@y.com") is None
    assert parse_one("a@x.com\r\nBcc: eve@evil.com") is None


# --- properties ------------------------------------------------------------------

_atext = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
)
_local = st.lists(
    st.text(_atext, min_size=1, max_size=10) | st.text("äöüéñçßø", min_size=1, max_size=3),
    min_size=1,
    max_size=3,
).map(".".join)
_label = st.text(list("abcdefghijklmnopqrstuvwxyz0123456789"), min_size=1, max_size=12) | st.text(
    list("abcäöüéñ"), min_size=1, max_size=8
)
_domain = st.lists(_label, min_size=2, max_size=4).map(".".join)
_name = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


@given(local=_local, domain=_domain, name=_name)
@settings(max_examples=300, deadline=None)
def test_round_trip_through_a_header(local: str, domain: str, name: str) -> None:
    expected = normalize(f"{local}@{domain}")
    if expected is None:  # e.g. a label IDNA refuses
        return
    header = str(StdAddress(display_name=name, username=local, domain=domain))
    assert keys(header) == [expected]


@given(st.text(max_size=300))
@settings(max_examples=500, deadline=None)
def test_never_raises_on_arbitrary_header_text(value: str) -> None:
    for address in parse_address_list(value):
        assert normalize(address.normalized) == address.normalized


@given(st.text(max_size=80))
@settings(max_examples=500, deadline=None)
def test_normalize_is_idempotent(value: str) -> None:
    key = normalize(value)
    if key is not None:
        assert normalize(key) == key
        assert normalize(key, "exact") == key


# The fast path for common shapes must agree with the full parser everywhere.
_simple_name = st.text(list("abcXYZ09 .'_-\""), max_size=12)
_simple_item = st.tuples(_simple_name, _local, _domain, st.booleans()).map(
    lambda t: f"{t[0]} <{t[1]}@{t[2]}>" if t[3] else f"{t[1]}@{t[2]}"
)


@given(st.lists(_simple_item, min_size=1, max_size=5), st.sampled_from([",", ", ", " ,\r\n "]))
@settings(max_examples=500, deadline=None)
def test_fast_path_agrees_with_the_full_parser(items: list[str], separator: str) -> None:
    from gateway.addresses import full_parse_address_list

    value = separator.join(items)
    unfolded = value.replace("\r\n ", " ")
    assert parse_address_list(value) == full_parse_address_list(unfolded)


@given(st.text(alphabet=st.sampled_from(list('ab@.<>" ,()\\:;-x')), max_size=40))
@settings(max_examples=1000, deadline=None)
def test_fast_path_agrees_on_tricky_ascii(value: str) -> None:
    from gateway.addresses import full_parse_address_list

    assert parse_address_list(value) == full_parse_address_list(value)
