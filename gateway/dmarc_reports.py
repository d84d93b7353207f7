"""DMARC aggregate reports (RFC 7489 appendix C): taken from mail to the rua address,
kept per sending domain, and read back as who sends as the domain and how it fares.

Reports come from anyone, so they are handled as hostile input:
- the report is the message's first gzip, zip or XML part; what it inflates to is
  bounded (MAX_XML) whatever the compressed size says (a zip bomb stops at the
  bound, it is not inflated further), and a zip's other members are not opened;
- the XML is parsed by defusedxml (no DTDs, no entities, no external references);
- at most MAX_ROWS rows; a field that is missing or not what the schema says makes
  the report malformed (MessageRejected: 550 5.6.0), never half-stored.
A report about a domain that is no account's sending domain is dropped without a
word to the sender; the same report twice (org, report id, domain) is kept once.
"""

from __future__ import annotations

import io
import ipaddress
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeTree
from defusedxml import DefusedXmlException
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import smtp_replies as replies
from gateway.errors import MessageRejected
from gateway.models import DmarcReport, DmarcReportRow, SendingDomain

MAX_XML = 8 * 1024 * 1024  # bytes of XML a report may inflate to
MAX_ROWS = 20_000
GZIP = ("application/gzip", "application/x-gzip", "application/x-gunzip")
ZIP = ("application/zip", "application/x-zip-compressed", "application/x-zip")
XML = ("text/xml", "application/xml")


class NotAReport(MessageRejected):
    def __init__(self, why: str) -> None:
        super().__init__(replies.NOT_A_REPORT._replace(text=f"{replies.NOT_A_REPORT.text}: {why}"))


class ReportTooBig(MessageRejected):
    def __init__(self) -> None:
        super().__init__(replies.REPORT_TOO_BIG)


@dataclass(frozen=True)
class Row:
    source_ip: str
    count: int
    disposition: str
    dkim: str  # DMARC's verdict on DKIM alignment: pass | fail
    spf: str
    spf_result: str  # the SPF result the receiver saw (pass, fail, softfail, ...)
    header_from: str


@dataclass
class Report:
    org_name: str
    report_id: str
    begin: datetime
    end: datetime
    domain: str
    policy: str
    rows: list[Row] = field(default_factory=list)


# -- from the message to the report -----------------------------------------------------


def report_of(raw: bytes) -> Report:
    return parse(xml_of(raw))


def xml_of(raw: bytes) -> bytes:
    """The report's XML: the message's first gzip, zip or XML part, inflated."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    for part in message.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        name = (part.get_filename() or "").lower()
        if kind in GZIP or name.endswith((".gz", ".gzip")):
            return _gunzip(_payload(part))
        if kind in ZIP or name.endswith(".zip"):
            return _unzip(_payload(part))
        if kind in XML or name.endswith(".xml"):
            data = _payload(part)
            if len(data) > MAX_XML:
                raise ReportTooBig()
            return data
    raise NotAReport("no gzip, zip or XML part")


def _payload(part: Any) -> bytes:
    assert isinstance(part, EmailMessage)
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_XML + 1)
    except zlib.error as exc:
        raise NotAReport(f"broken gzip ({exc})") from exc
    if len(out) > MAX_XML or inflater.unconsumed_tail:
        raise ReportTooBig()
    if not inflater.eof:
        raise NotAReport("broken gzip (it ends too soon)")
    return out


def _unzip(data: bytes) -> bytes:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if m.filename.lower().endswith(".xml")]
        if not members:
            raise NotAReport("no .xml file in the zip")
        member = members[0]
        if member.file_size > MAX_XML:
            raise ReportTooBig()
        with archive.open(member) as handle:
            out = handle.read(MAX_XML + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise NotAReport(f"broken zip ({exc})") from exc
    if len(out) > MAX_XML:  # the member lied about its size
        raise ReportTooBig()
    return out


def parse(xml: bytes) -> Report:
    try:
        root = SafeTree.fromstring(xml, forbid_dtd=True)
    except (SafeTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise NotAReport(f"not well-formed XML ({exc})") from exc
    _strip_namespaces(root)
    if root.tag != "feedback":
        raise NotAReport(f"the root element is <{root.tag}>, not <feedback>")
    meta = _child(root, "report_metadata")
    published = _child(root, "policy_published")
    begin, end = _time(meta, "date_range/begin"), _time(meta, "date_range/end")
    report = Report(
        org_name=_text(meta, "org_name")[:200],
        report_id=_text(meta, "report_id")[:200],
        begin=begin,
        end=end,
        domain=_domain(_text(published, "domain")),
        policy=(published.findtext("p") or "").strip().lower()[:16],
    )
    records = root.findall("record")
    if len(records) > MAX_ROWS:
        raise ReportTooBig()
    for record in records:
        report.rows.append(_row(record))
    return report


def _row(record: Element) -> Row:
    row = _child(record, "row")
    evaluated = _child(row, "policy_evaluated")
    try:
        ip = str(ipaddress.ip_address(_text(row, "source_ip")))
        count = int(_text(row, "count"))
    except ValueError as exc:
        raise NotAReport(f"a row's source_ip or count is wrong ({exc})") from exc
    if count < 0:
        raise NotAReport("a row's count is negative")
    spf_results = [
        (s.findtext("result") or "").strip().lower() for s in record.findall("auth_results/spf")
    ]
    return Row(
        source_ip=ip,
        count=count,
        disposition=(evaluated.findtext("disposition") or "none").strip().lower()[:16],
        dkim=_verdict(evaluated.findtext("dkim")),
        spf=_verdict(evaluated.findtext("spf")),
        spf_result=(spf_results[0] if spf_results else "none")[:16],
        header_from=(record.findtext("identifiers/header_from") or "").strip().lower()[:253],
    )


def _strip_namespaces(root: Element) -> None:
    """DMARCbis reports put everything in a namespace: read them as RFC 7489's."""
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]


def _child(parent: Element, name: str) -> Element:
    found = parent.find(name)
    if found is None:
        raise NotAReport(f"<{name}> is missing")
    return found


def _text(parent: Element, path: str) -> str:
    value = (parent.findtext(path) or "").strip()
    if not value:
        raise NotAReport(f"<{path}> is missing or empty")
    return value


def _time(parent: Element, path: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(_text(parent, path)), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise NotAReport(f"<{path}> is not a time") from exc


def _domain(text: str) -> str:
    domain = text.strip().lower().rstrip(".")
    if not domain or len(domain) > 253 or " " in domain:
        raise NotAReport("<policy_published/domain> is not a domain")
    return domain


def _verdict(text: str | None) -> str:
    return "pass" if (text or "").strip().lower() == "pass" else "fail"


# -- keeping it ---------------------------------------------------------------------------


def store(session: Session, report: Report) -> str:
    """ "stored", "duplicate", or "ignored" (no account sends from its domain)."""
    owner = session.scalar(
        select(SendingDomain.account_id).where(SendingDomain.domain == report.domain)
    )
    if owner is None:
        return "ignored"
    seen = session.scalar(
        select(DmarcReport.id).where(
            DmarcReport.domain == report.domain,
            DmarcReport.org_name == report.org_name,
            DmarcReport.report_id == report.report_id,
        )
    )
    if seen is not None:
        return "duplicate"
    row = DmarcReport(
        account_id=owner,
        domain=report.domain,
        org_name=report.org_name,
        report_id=report.report_id,
        begin=report.begin,
        end=report.end,
        policy=report.policy,
    )
    session.add(row)
    session.flush()
    session.add_all(
        DmarcReportRow(
            report_id=row.id,
            source_ip=r.source_ip,
            count=r.count,
            disposition=r.disposition,
            dkim=r.dkim,
            spf=r.spf,
            spf_result=r.spf_result,
            header_from=r.header_from,
        )
        for r in report.rows
    )
    return "stored"


# -- reading them ---------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    ip: str
    messages: int
    dkim_aligned: int
    spf_aligned: int
    aligned: int  # DKIM or SPF aligned: DMARC passes
    spf_passed: int  # the receiver's SPF result was pass


@dataclass(frozen=True)
class Summary:
    domain: str
    days: int
    reports: int
    reporters: list[str]
    messages: int
    aligned: int
    sources: list[Source]
    reading: str


def summary(session: Session, account_id: int, domain: str, days: int = 30) -> Summary:
    since = datetime.now(UTC) - timedelta(days=days)
    reports = session.execute(
        select(DmarcReport.id, DmarcReport.org_name, DmarcReport.policy).where(
            DmarcReport.account_id == account_id,
            DmarcReport.domain == domain,
            DmarcReport.end >= since,
        )
    ).all()
    ids = [r.id for r in reports]
    by_ip: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    if ids:
        for row in session.scalars(select(DmarcReportRow).where(DmarcReportRow.report_id.in_(ids))):
            figures = by_ip[row.source_ip]
            figures[0] += row.count
            figures[1] += row.count if row.dkim == "pass" else 0
            figures[2] += row.count if row.spf == "pass" else 0
            figures[3] += row.count if "pass" in (row.dkim, row.spf) else 0
            figures[4] += row.count if row.spf_result == "pass" else 0
    sources = sorted(
        (Source(ip, *figures) for ip, figures in by_ip.items()),
        key=lambda s: (-s.messages, s.ip),
    )
    total = sum(s.messages for s in sources)
    aligned = sum(s.aligned for s in sources)
    policies = {r.policy for r in reports}
    return Summary(
        domain=domain,
        days=days,
        reports=len(reports),
        reporters=sorted({r.org_name for r in reports}),
        messages=total,
        aligned=aligned,
        sources=sources,
        reading=_reading(domain, total, aligned, sources, policies),
    )


def _reading(
    domain: str, total: int, aligned: int, sources: list[Source], policies: set[str]
) -> str:
    if not total:
        return f"No reports about {domain} yet: receivers send them once a day."
    share = round(100 * aligned / total)
    worst = max(sources, key=lambda s: (s.messages - s.aligned, s.ip))
    unaligned = worst.messages - worst.aligned
    if not unaligned:
        if policies <= {"none", ""}:
            return (
                f"100% aligned ({total} messages): every sender passes DMARC. Moving to "
                "p=quarantine, then p=reject, is safe."
            )
        return f"100% aligned ({total} messages): every sender passes DMARC."
    part = max(1, round(100 * unaligned / total))
    why = (
        "not in your SPF and not signed with your DKIM key"
        if worst.spf_passed < worst.messages
        else "not aligned with your domain"
    )
    return (
        f"{share}% aligned; {part}% from {worst.ip}, {why}: a service sending as you, or "
        f"someone forging {domain}?"
    )
