"""DMARC aggregate reports shaped as Google, Microsoft (Outlook.com) and Yahoo send
them (RFC 7489 appendix C, each with its reporter's own habits), and the mail that
carries one (zipped or gzipped, base64 in a multipart/mixed)."""

from __future__ import annotations

import base64
import io
import time
import zipfile

RUA = "dmarc-reports@dropbox.localhost"  # the defaults: [dns_checks], [dropbox] domain
END = int(time.time()) // 86400 * 86400  # reports cover the last whole day
BEGIN = END - 86400


def _row(ip: str, count: int, dkim: str, spf: str, spf_result: str, domain: str) -> str:
    return (
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count>"
        f"<policy_evaluated><disposition>none</disposition><dkim>{dkim}</dkim>"
        f"<spf>{spf}</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers>"
        f"<auth_results><dkim><domain>{domain}</domain><result>{dkim}</result>"
        f"<selector>gw202612</selector></dkim>"
        f"<spf><domain>{domain}</domain><result>{spf_result}</result></spf></auth_results>"
        "</record>"
    )


def google(domain: str, report_id: str = "9391651994964116463") -> bytes:
    """As Google sends it: no XML namespace, a version-less feedback, zipped."""
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<feedback><report_metadata>'
        "<org_name>google.com</org_name><email>noreply-dmarc-support@google.com</email>"
        "<extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>"
        f"<report_id>{report_id}</report_id><date_range><begin>{BEGIN}</begin>"
        f"<end>{END}</end></date_range></report_metadata>"
        f"<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf>"
        "<p>none</p><sp>none</sp><pct>100</pct><np>none</np></policy_published>"
        + _row("203.0.113.25", 98, "pass", "pass", "pass", domain)
        + _row("203.0.113.7", 2, "fail", "fail", "softfail", domain)
        + "</feedback>"
    ).encode()


def microsoft(domain: str) -> bytes:
    """As Outlook.com sends it: XSD namespaces, a version, envelope_to, gzipped."""
    return (
        '<?xml version="1.0"?>\n<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><version>1.0</version>'
        "<report_metadata><org_name>Outlook.com</org_name>"
        "<email>dmarcreport@microsoft.com</email>"
        "<report_id>a1b2c3d4e5f60718293a4b5c6d7e8f90</report_id>"
        f"<date_range><begin>{BEGIN}</begin><end>{END}</end></date_range>"
        f"</report_metadata><policy_published><domain>{domain}</domain><adkim>r</adkim>"
        "<aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct><fo>1</fo>"
        "</policy_published><record><row><source_ip>2001:db8::25</source_ip>"
        "<count>5</count><policy_evaluated><disposition>none</disposition>"
        "<dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers>"
        f"<envelope_to>outlook.com</envelope_to><envelope_from>{domain}</envelope_from>"
        f"<header_from>{domain}</header_from></identifiers><auth_results><dkim>"
        f"<domain>{domain}</domain><selector>gw202612</selector><result>pass</result>"
        f"</dkim><spf><domain>{domain}</domain><scope>mfrom</scope><result>pass</result>"
        "</spf></auth_results></record></feedback>"
    ).encode()


def yahoo(domain: str) -> bytes:
    """As Yahoo sends it (DMARCbis-style: everything in a namespace), gzipped."""
    return (
        '<?xml version="1.0"?><feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">'
        "<report_metadata><org_name>Yahoo</org_name><email>dmarchelp@yahooinc.com</email>"
        f"<report_id>1764979200.123456</report_id><date_range><begin>{BEGIN}</begin>"
        f"<end>{END}</end></date_range></report_metadata><policy_published>"
        f"<domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p>"
        "<pct>100</pct></policy_published>"
        + _row("203.0.113.25", 3, "pass", "pass", "pass", domain)
        + "</feedback>"
    ).encode()


def mail(attachment: bytes, content_type: str, filename: str, sender: str) -> bytes:
    boundary = "REPORT-BOUNDARY"
    body = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
    return (
        f"From: {sender}\r\nTo: {RUA}\r\nSubject: Report domain: acme.example\r\n"
        "Date: Sat, 05 Dec 2026 00:00:00 +0000\r\nMessage-ID: <r@reporter.example>\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nThis is a DMARC aggregate report.\r\n"
        f"--{boundary}\r\nContent-Type: {content_type}; name={filename}\r\n"
        f"Content-Disposition: attachment; filename={filename}\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n--{boundary}--\r\n"
    ).encode()


def zipped(xml: bytes, name: str = "google.com!acme.example!1764892800!1764979199.xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, xml)
    return buffer.getvalue()
