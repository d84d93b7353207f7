"""parse(): header facts from raw bytes, never raising."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.parsing import parse, thread_subject
from tests.helpers.mail import make_message


def test_basic_fields() -> None:
    raw = make_message(
        message_id="<abc@x.com>",
        in_reply_to="<p1@x.com>",
        references="<p0@x.com>\r\n <p1@x.com>",
        subject="=?utf-8?q?Caf=C3=A9?= plans",
        cc="dan@client.com",
    )
    parsed = parse(raw)
    assert parsed.message_id == "abc@x.com"
    assert parsed.in_reply_to == ("p1@x.com",)
    assert parsed.references == ("p0@x.com", "p1@x.com")
    assert parsed.subject == "Caf\u00e9 plans"
    assert parsed.date == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert [a.normalized for a in parsed.addresses["cc"]] == ["dan@client.com"]
    assert not parsed.malformed


def test_two_from_headers_are_flagged() -> None:
    parsed = parse(make_message(from_=["a@x.com", "b@y.com"]))
    assert "multiple_from" in parsed.flags and parsed.malformed
    assert [a.normalized for a in parsed.from_] == ["a@x.com", "b@y.com"]


def test_missing_message_id_still_has_a_stable_identity() -> None:
    one = parse(make_message(message_id=None))
    again = parse(make_message(message_id=None, extra=["Received: from x by y"]))
    other = parse(make_message(message_id=None, to="someone@else.com"))
    assert one.message_id is None
    assert one.identity() == again.identity() != other.identity()


def test_message_id_reuse_changes_identity() -> None:
    real = parse(make_message(message_id="<same@x.com>"))
    forged = parse(make_message(message_id="<same@x.com>", from_="eve@evil.com"))
    assert real.identity() != forged.identity()


def test_garbage_is_malformed_not_an_exception() -> None:
    assert parse(b"").flags == ("no_headers",)
    assert parse(b"just some text\n").malformed
    assert parse(b"\x00\xff\xfe binary").malformed


def test_raw_utf8_subject_and_addresses() -> None:
    raw = (
        "From: J\u00f6rg <j\u00f6rg@b\u00fccher.de>\r\n"
        "To: x@y.com\r\nSubject: \u00e9t\u00e9\r\n\r\nx"
    ).encode()
    parsed = parse(raw)
    assert parsed.subject == "\u00e9t\u00e9"
    assert parsed.from_[0].normalized == "j\u00f6rg@xn--bcher-kva.de"


def test_hostile_message_ids_are_not_taken() -> None:
    assert parse(make_message(message_id="<a\x00b@x>")).message_id is None
    assert parse(make_message(message_id="not an id")).message_id is None


def test_thread_subject() -> None:
    assert thread_subject("Re: RE: Fwd: AW: Hello  world") == "hello world"
    assert thread_subject("Re[2]: Hello") == "hello"


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    parse(raw)


_header_names = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Bcc",
        "Reply-To",
        "Sender",
        "Subject",
        "Date",
        "Message-ID",
        "References",
        "In-Reply-To",
        "X-Other",
    ]
)


@given(st.lists(st.tuples(_header_names, st.text(max_size=120)), max_size=12))
@settings(max_examples=300, deadline=None)
def test_never_raises_on_arbitrary_headers(headers: list[tuple[str, str]]) -> None:
    text = "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\nbody"
    parsed = parse(text.encode("utf-8", "surrogatepass"))
    parsed.identity()


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_subject_without_encoded_words_reads_as_the_stdlib_reads_it(value: str) -> None:
    """The subject skips the stdlib header parser unless it holds an encoded word;
    what a reader sees must not change."""
    import re
    from email import policy

    from gateway.parsing import _subject

    try:
        expected = str(policy.default.header_factory("subject", value))
    except Exception:
        expected = value
    assert _subject([value]) == re.sub(r"\s+", " ", expected).strip()


_HEADER_LINES = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["From", "To", "Cc", "Subject", "X-Odd", "Message-ID", "Date"]),
            st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=40),
        ).map(lambda t: f"{t[0]}:{t[1]}"),
        st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0xFF), max_size=30),
        st.sampled_from([" folded", "\tfolded", "From someone", "no colon", ":", "A:", ""]),
    ),
    max_size=8,
)


@given(_HEADER_LINES, st.sampled_from(["\r\n", "\n", "\r"]))
@settings(max_examples=500)
def test_the_fast_header_split_reads_as_the_stdlib_parser(lines: list[str], eol: str) -> None:
    """split_headers() answers only for sections the stdlib reads without defects, and
    then exactly as the stdlib does; otherwise it declines (None)."""
    from email import policy
    from email.parser import BytesParser

    from gateway.parsing import split_headers

    head = (eol.join(lines) + eol + eol).encode("latin-1")
    fast = split_headers(head)
    if fast is None:
        return
    stdlib = BytesParser(policy=policy.compat32).parsebytes(head, headersonly=True)
    assert fast == list(stdlib.raw_items())
    assert stdlib.defects == []


def test_the_fast_header_split_declines_what_it_does_not_know() -> None:
    from gateway.parsing import split_headers

    assert split_headers(b"From: a@b\r\nTo: c@d\r\n\r\n") == [("From", "a@b"), ("To", "c@d")]
    assert split_headers(b"From: a@b\r\n folded\r\n\r\n") == [("From", "a@b\r\n folded")]
    assert split_headers(b"From a@b Mon Jan 1\r\nTo: c\r\n\r\n") is None  # mbox From line
    assert split_headers(b" starts folded: x\r\n\r\n") is None
    assert split_headers(b"From: a\rTo: b\r\n\r\n") is None  # a bare CR


_DATES = st.builds(
    lambda wd, d, mon, y, h, mi, s, sign, oh, om: (
        f"{wd}{d} {mon} {y} {h:02d}:{mi:02d}:{s:02d} {sign}{oh:02d}{om:02d}"
    ),
    st.sampled_from(["", "Mon, ", "Sun, ", "Xyz, "]),
    st.integers(0, 40),
    st.sampled_from(["Jan", "Feb", "Jun", "Dec", "Foo"]),
    st.one_of(st.integers(1, 9999), st.sampled_from([1, 99, 100, 999, 1000, 1969, 2026, 9999])),
    st.integers(0, 61),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["+", "-"]),
    st.integers(0, 99),
    st.integers(0, 99),
)


@given(_DATES)
@settings(max_examples=500)
def test_common_dates_read_as_the_stdlib_reads_them(value: str) -> None:
    """Dates in the common form skip email.utils; the moment read must not change,
    including the edges: 2-digit years, -0000, offsets of a day or more, overflow."""
    from email.utils import parsedate_to_datetime

    from gateway.parsing import _date

    try:
        expected: datetime | None = parsedate_to_datetime(value)
        assert expected is not None
        if expected.tzinfo is None:
            expected = expected.replace(tzinfo=UTC)
        expected = expected.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        expected = None
    got = _date([value])
    assert got == expected
    assert got is None or got.tzinfo is UTC


_NAMES = st.sampled_from(
    ["", "Bob", '"Bob Smith"', "O'Neil", "A.B", '"x@y"', "=?utf-8?q?B=C3=B6b?="]
)
_SPECS = st.sampled_from(
    [
        "bob@acme.com",
        "Bob@ACME.com.",
        "a.b+c@x-y.example",
        "bad..dots@x.com",
        "no-at-sign",
        '"quoted local"@x.com',
        "ünï@x.com",
        "a@[127.0.0.1]",
        "a@-bad-.com",
        "x@xn--bcher-kva.example",
    ]
)
_ITEMS = st.builds(
    lambda name, spec, angle: f"{name} <{spec}>" if angle or name else spec,
    _NAMES,
    _SPECS,
    st.booleans(),
)
_ADDRESS_VALUES = st.one_of(
    st.lists(_ITEMS, min_size=1, max_size=4).map(", ".join),
    st.lists(_ITEMS, min_size=1, max_size=3).map(",\r\n ".join),  # folded
    st.sampled_from(["undisclosed-recipients:;", "Team: a@b.c, d@e.f;", "a@b.c (comment)", ""]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)
_SCAN_HEADERS = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["From", "To", "CC", "bcc", "Reply-To", "Sender"]), _ADDRESS_VALUES
        ),
        st.tuples(
            st.just("Message-ID"), st.sampled_from(["<a@b>", "a@b", "<x> <y@z>", "", "<a b>"])
        ),
        st.tuples(
            st.just("Date"),
            st.sampled_from(["Tue, 1 Dec 2026 09:05:00 +0100", "1 Dec 26 09:05 GMT", "soon"]),
        ),
        st.tuples(st.just("Subject"), st.text(max_size=20)),
    ),
    max_size=8,
)


@given(_SCAN_HEADERS, st.sampled_from(["lower", "exact"]))
@settings(max_examples=500)
def test_the_header_scan_reads_as_parse_reads(
    headers: list[tuple[str, str]], local_part_case: str
) -> None:
    """scan_headers() decides which IMAP messages are downloaded: it must find exactly
    the addresses, Message-ID and date parse() finds, whichever path it takes."""
    from gateway.parsing import scan_headers

    raw = ("".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n").encode("utf-8", "surrogatepass")
    parsed = parse(raw, local_part_case)
    expected = {a.normalized for addresses in parsed.addresses.values() for a in addresses}
    scan = scan_headers(raw, local_part_case)
    assert scan.addresses == expected
    assert (scan.message_id, scan.date) == (parsed.message_id, parsed.date)


def test_the_header_scan_reads_common_headers_without_the_full_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gateway.parsing

    def refuse(*_: object) -> None:
        raise AssertionError("parse() called for a common header section")

    raw = (
        b'From: Carol <carol@Client.com>\r\nTo: bob@acme.com,\r\n "Ann" <ann@acme.com>\r\n'
        b"Subject: hi\r\nDate: Tue, 1 Dec 2026 09:05:00 +0100\r\nMessage-ID: <m1@x>\r\n\r\n"
    )
    monkeypatch.setattr(gateway.parsing, "parse", refuse)
    scan = gateway.parsing.scan_headers(raw)
    assert scan.addresses == {"carol@client.com", "bob@acme.com", "ann@acme.com"}
    assert scan.message_id == "m1@x"
    assert scan.date == datetime(2026, 12, 1, 8, 5, tzinfo=UTC)
