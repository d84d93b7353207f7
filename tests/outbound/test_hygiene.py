"""outbound.hygiene: what every message the CRM sends is checked for and completed with."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import MessageRejected
from outbound.hygiene import prepare, transmitted


def test_message_id_and_date_are_added_only_when_missing() -> None:
    bare = prepare(b"From: Bob <bob@acme.com>\r\nTo: carol@client.com\r\n\r\nhi\r\n")
    assert bare.raw.startswith(f"Message-ID: <{bare.message_id}>\r\nDate: ".encode())
    assert bare.message_id.endswith("@acme.com") and bare.senders == ("bob@acme.com",)
    given_ids = prepare(
        b"From: bob@acme.com\r\nMessage-ID: <crm-42@crm.example>\r\n"
        b"Date: Tue, 1 Dec 2026 09:05:00 +0100\r\n\r\nhi\r\n"
    )
    assert given_ids.message_id == "crm-42@crm.example"
    assert given_ids.raw.startswith(b"From: bob@acme.com\r\n")  # nothing added


def test_a_message_without_a_body_gets_its_blank_line() -> None:
    assert prepare(b"From: bob@acme.com\r\nSubject: x").raw.endswith(b"Subject: x\r\n\r\n")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"To: carol@client.com\r\n\r\nx", "no From"),
        (b"From: undisclosed-recipients:;\r\n\r\nx", "no usable address"),
        (b"From: bob@acme.com\r\nMessage-ID: not-an-id\r\n\r\nx", "Message-ID"),
        (b" folded first\r\nFrom: bob@acme.com\r\n\r\nx", "folded line"),
        (b"From: bob@acme.com\r\nFrom: ann@acme.com\r\n\r\nx", "more than one from"),
        (b"From: bob@acme.com\r\nSubject: \xc3\xa9\r\n\r\nx", "SMTPUTF8"),
        (b"From: bob@acme.com\r\nTo: =?utf-8?q?a=0Ab?= <c@d.e>\r\n\r\nx", "line break"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MessageRejected) as refused:
        prepare(raw)
    assert reason.lower() in str(refused.value).lower()


def test_eight_bit_headers_pass_with_smtputf8() -> None:
    raw = "From: bob@acme.com\r\nSubject: Grüße\r\n\r\nx\r\n".encode()
    assert prepare(raw, smtp_utf8=True).raw.endswith(raw)


def test_the_transmitted_copy_has_no_bcc() -> None:
    raw = (
        b"From: bob@acme.com\r\nBcc: boss@acme.com,\r\n  audit@acme.com\r\nTo: c@d.e\r\n"
        b"BCC : x@y.z\r\n\r\nBcc: in the body stays\r\n"
    )
    assert transmitted(raw) == (
        b"From: bob@acme.com\r\nTo: c@d.e\r\n\r\nBcc: in the body stays\r\n"
    )


@given(st.binary(max_size=400), st.booleans())
@settings(max_examples=300)
def test_any_bytes_are_refused_or_come_out_with_crlf_and_ids(raw: bytes, utf8: bool) -> None:
    """Never an exception other than a refusal; whatever is queued has CRLF line ends
    only, one Message-ID and one Date."""
    message = b"From: bob@acme.com\r\n" + raw
    try:
        out = prepare(message, smtp_utf8=utf8)
    except MessageRejected:
        return
    assert out.raw.count(b"\n") == out.raw.count(b"\r\n") == out.raw.count(b"\r")
    head = out.raw.split(b"\r\n\r\n", 1)[0].lower()
    lines = head.split(b"\r\n")
    assert sum(line.startswith(b"message-id:") for line in lines) == 1
    assert sum(line.startswith(b"date:") for line in lines) == 1
