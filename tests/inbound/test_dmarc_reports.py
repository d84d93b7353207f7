"""DMARC aggregate reports sent to the dropbox's rua address: Google-, Microsoft- and
Yahoo-shaped XML (as those reporters structure it), zipped and gzipped, kept for the
domain's account and read back; a malformed, an oversized (a zip and a gzip bomb)
and a duplicate report, and one about a domain no account sends from."""

from __future__ import annotations

import gzip
import smtplib
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from gateway import smtp_replies as replies
from gateway.dmarc_reports import summary
from gateway.models import DmarcReport, DmarcReportRow, SendingDomain
from tests.helpers.dropbox import Dropbox, expect
from tests.peers.dmarc_reporters import RUA, google, mail, microsoft, yahoo, zipped


@pytest.fixture
def reports(dropbox: Dropbox, account_id: int) -> Iterator[Dropbox]:
    with dropbox.db.session() as session:
        session.add(SendingDomain(account_id=account_id, domain="acme.example", checks=[]))
    yield dropbox


def deliver(
    dropbox: Dropbox, raw: bytes, sender: str = "noreply@reporter.example"
) -> tuple[int, str]:
    with dropbox.client() as client:
        client.mail(sender)
        code, _ = client.rcpt(RUA)
        assert code == 250
        code, text = client.data(raw)
        return code, text.decode()


def stored(dropbox: Dropbox) -> list[tuple[str, str, int]]:
    with dropbox.db.read() as session:
        rows = session.execute(
            select(DmarcReport.org_name, DmarcReport.domain, func.count(DmarcReportRow.id))
            .join(DmarcReportRow, DmarcReportRow.report_id == DmarcReport.id)
            .group_by(DmarcReport.id, DmarcReport.org_name, DmarcReport.domain)
            .order_by(DmarcReport.id)
        )
        return [(o, d, n) for o, d, n in rows]


def test_reports_from_google_microsoft_and_yahoo_are_kept_and_read(
    reports: Dropbox, account_id: int
) -> None:
    # From anyone: the reporters' own domains publish nothing in the tests' DNS.
    google_mail = mail(
        zipped(google("acme.example")),
        "application/zip",
        "g.zip",
        "noreply-dmarc-support@google.com",
    )
    assert deliver(reports, google_mail) == (250, "2.0.0 DMARC report received")
    ms = mail(
        gzip.compress(microsoft("acme.example")),
        "application/gzip",
        "m.xml.gz",
        "dmarcreport@microsoft.com",
    )
    assert deliver(reports, ms)[0] == 250
    yh = mail(
        gzip.compress(yahoo("acme.example")),
        "application/gzip",
        "y.xml.gz",
        "noreply@dmarc.yahoo.com",
    )
    assert deliver(reports, yh)[0] == 250
    assert stored(reports) == [
        ("google.com", "acme.example", 2),
        ("Outlook.com", "acme.example", 1),
        ("Yahoo", "acme.example", 1),
    ]
    # The same report again (a resend) is kept once.
    assert deliver(reports, google_mail)[0] == 250
    assert len(stored(reports)) == 3
    with reports.db.read() as session:
        read = summary(session, account_id, "acme.example")
    assert (read.reports, read.messages, read.aligned) == (3, 108, 106)
    assert read.reporters == ["Outlook.com", "Yahoo", "google.com"]
    assert read.sources[0].ip == "203.0.113.25" and read.sources[0].messages == 101
    assert read.reading == (
        "98% aligned; 2% from 203.0.113.7, not in your SPF and not signed with your DKIM key: "
        "a service sending as you, or someone forging acme.example?"
    )


def test_a_report_about_a_domain_no_account_sends_from_is_dropped(reports: Dropbox) -> None:
    raw = mail(zipped(google("someone-else.example")), "application/zip", "g.zip", "x@google.com")
    assert deliver(reports, raw)[0] == 250  # no word to the sender
    assert stored(reports) == []


@pytest.mark.parametrize(
    "attachment, kind, why",
    [
        (b"<feedback><report_metadata>", "text/xml", "not well-formed XML"),
        (b"<html><body>hi</body></html>", "text/xml", "the root element is <html>"),
        (b"<feedback></feedback>", "text/xml", "<report_metadata> is missing"),
        (gzip.compress(b"<feedback>")[:10], "application/gzip", "broken gzip"),
        (b"PK\x03\x04 not a zip at all", "application/zip", "broken zip"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaa">]><feedback>&a;</feedback>',
            "text/xml",
            "not well-formed XML",
        ),
    ],
)
def test_malformed_reports_are_refused_without_harm(
    reports: Dropbox, attachment: bytes, kind: str, why: str
) -> None:
    code, text = deliver(reports, mail(attachment, kind, "r.bin", "x@reporter.example"))
    assert code == 550 and text.startswith("5.6.0 Not a DMARC aggregate report") and why in text
    assert stored(reports) == []


def test_oversized_reports_are_refused_without_inflating_them(reports: Dropbox) -> None:
    bomb = gzip.compress(b"<" + b"a" * (64 * 1024 * 1024))  # 64 MB of XML in ~64 KB
    code, text = deliver(reports, mail(bomb, "application/gzip", "bomb.xml.gz", "x@r.example"))
    assert (code, text) == (replies.REPORT_TOO_BIG.code, f"5.3.4 {replies.REPORT_TOO_BIG.text}")
    big = zipped(b"<feedback>" + b" " * (9 * 1024 * 1024) + b"</feedback>")
    assert deliver(reports, mail(big, "application/zip", "big.zip", "x@r.example"))[0] == 552
    assert stored(reports) == []


def test_the_reports_address_takes_only_reports(reports: Dropbox) -> None:
    """Plain mail to it is refused as not a report: it is nobody's dropbox."""
    plain = b"From: someone@else.example\r\nTo: " + RUA.encode() + b"\r\nSubject: hi\r\n\r\nhi\r\n"
    with pytest.raises(smtplib.SMTPDataError) as caught, reports.client() as client:
        client.sendmail("someone@else.example", [RUA], plain)
    assert caught.value.smtp_code == 550
    assert b"Not a DMARC aggregate report" in caught.value.smtp_error
    with reports.client() as client:  # another local part of the domain: unknown
        client.mail("someone@else.example")
        expect(client.rcpt("dmarc-report@dropbox.localhost"), replies.UNKNOWN_RECIPIENT)
