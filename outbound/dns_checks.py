"""Live checks of what a sending domain publishes, through the configured resolver.

    SPF    pyspf evaluates the domain's record for each of [outbound] sending_ips:
           the result, the term that matched, the DNS look-ups used (of 10) and
           void look-ups; no record, two records, or a record that does not allow
           an address fail
    DKIM   for each active key: the published key must be ours (a CNAME to it is
           fine), and a message signed now must verify with dkimpy against live DNS
    DMARC  present and parsed: its policy and alignment, and whether reports come here
    MX     the dropbox domain's MX points at [dropbox] hostname

Each finding is pass, warn or fail with the reason in plain words and what to
change; a DNS timeout or SERVFAIL is "unknown" (said as such), never a failure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import dkim
import spf

from gateway import spf_dns
from gateway.config import Config
from gateway.resolver import DnsTempError, Resolver
from outbound.dkim_keys import SigningKey, txt_value
from outbound.dkim_sign import Signer
from outbound.dns_records import MAX_LOOKUPS, mechanisms

PASS, WARN, FAIL, UNKNOWN = "pass", "warn", "fail", "unknown"
ORDER = {PASS: 0, UNKNOWN: 1, WARN: 2, FAIL: 3}
PROBE = (
    b"From: DNS check <postmaster@{domain}>\r\nTo: postmaster@{domain}\r\n"
    b"Subject: DKIM check\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
    b"Message-ID: <dkim-check@{domain}>\r\n\r\nA message the gateway signs to check DKIM.\r\n"
)


@dataclass(frozen=True)
class Finding:
    kind: str  # spf | dkim | dmarc | mx
    name: str  # the DNS name checked
    status: str  # pass | warn | fail | unknown
    words: str  # what was found, in plain words
    fix: str = ""  # what to change, when something should

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def overall(findings: Sequence[Finding]) -> str:
    """The worst status; "unknown" only when nothing failed or warned."""
    if not findings:
        return UNKNOWN
    return max((f.status for f in findings), key=lambda s: ORDER[s])


def check_domain(
    config: Config, resolver: Resolver, domain: str, keys: Sequence[SigningKey]
) -> list[Finding]:
    return [
        *check_spf(config, resolver, domain),
        *check_dkim(resolver, domain, keys),
        check_dmarc(config, resolver, domain),
    ]


# -- SPF -------------------------------------------------------------------------------


def check_spf(config: Config, resolver: Resolver, domain: str) -> list[Finding]:
    try:
        published = txt_of(resolver, domain)
    except DnsTempError as exc:
        return [_unknown("spf", domain, exc)]
    records = [t for t in published if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
    if not records:
        return [
            Finding(
                "spf", domain, FAIL, f"{domain} has no SPF record.", "Publish the SPF record shown."
            )
        ]
    if len(records) > 1:
        return [
            Finding(
                "spf",
                domain,
                FAIL,
                f"{domain} has {len(records)} SPF records; receivers treat that as an error "
                "(permerror), so SPF fails for all its mail.",
                "Merge them into the one record shown and delete the others.",
            )
        ]
    ips = config.outbound.sending_ips
    if not ips:
        wanted = mechanisms(config)
        if not wanted:
            return [
                Finding(
                    "spf",
                    domain,
                    WARN,
                    f"An SPF record exists ({records[0]}), but the gateway does not know "
                    "which addresses it sends from.",
                    "Set [outbound] sending_ips or spf_include.",
                )
            ]
        absent = [w for w in wanted if w.lower() not in records[0].lower().split()]
        if absent:
            return [
                Finding(
                    "spf",
                    domain,
                    FAIL,
                    f"An SPF record exists but does not include {' '.join(absent)}.",
                    "Publish the SPF record shown.",
                )
            ]
        return [Finding("spf", domain, PASS, f"The SPF record includes {' '.join(wanted)}.")]
    return [_spf_for(config, resolver, domain, ip) for ip in ips]


def _spf_for(config: Config, resolver: Resolver, domain: str, ip: str) -> Finding:
    with spf_dns.using(resolver):
        query = spf.query(i=ip, s=f"postmaster@{domain}", h=config.outbound.helo_name)
        result, _code, explanation = query.check()
    used = f"{query.lookups} DNS look-ups of {MAX_LOOKUPS}"
    if query.void_lookups:
        used += f", {query.void_lookups} with no answer (2 allowed)"
    matched = f", matched {query.mechanism}" if query.mechanism else ""
    if result == "pass":
        return Finding("spf", domain, PASS, f"SPF allows {ip} ({used}{matched}).")
    if result == "temperror":
        return Finding(
            "spf",
            domain,
            UNKNOWN,
            f"SPF for {ip} could not be evaluated now: DNS did not answer ({explanation}). "
            "This is not a failure; it is checked again later.",
        )
    if result == "permerror":
        return Finding(
            "spf",
            domain,
            FAIL,
            f"The SPF record is broken for receivers (permerror: {explanation}; {used}).",
            "Publish the SPF record shown; keep it within 10 DNS-querying terms.",
        )
    return Finding(
        "spf",
        domain,
        FAIL,
        f"An SPF record exists but does not allow {ip}: the result is {result}{matched}.",
        f"Add ip{ipaddress.ip_address(ip).version}:{ip} to it (the SPF record shown has it).",
    )


# -- DKIM ------------------------------------------------------------------------------


def check_dkim(resolver: Resolver, domain: str, keys: Sequence[SigningKey]) -> list[Finding]:
    if not keys:
        return [
            Finding(
                "dkim",
                domain,
                FAIL,
                f"The gateway has no DKIM key for {domain}, so its mail is not signed.",
                f"gateway dkim generate {domain}",
            )
        ]
    return [_dkim_for(resolver, key) for key in keys]


def _dkim_for(resolver: Resolver, key: SigningKey) -> Finding:
    name = f"{key.selector}._domainkey.{key.domain}"
    try:
        published = [t for t in txt_of(resolver, name) if "p=" in t]
    except DnsTempError as exc:
        return _unknown("dkim", name, exc)
    ours = txt_value(key.algorithm, key.public_b64)
    if not published:
        return Finding(
            "dkim", name, FAIL, f"No DKIM record at {name}.", "Publish the DKIM record shown."
        )
    keys = [_tag(text, "p") for text in published]
    if key.public_b64 not in keys:
        return Finding(
            "dkim",
            name,
            FAIL,
            f"{name} publishes another key (p={_short(keys[0])}), not the gateway's "
            f"(p={_short(key.public_b64)}): mail signed now fails DKIM.",
            f"Replace the record with: {ours}",
        )

    def lookup(qname: bytes, timeout: float = 5) -> bytes | None:
        text = qname.decode("ascii").rstrip(".")
        try:
            found = resolver.txt(text)
        except DnsTempError as exc:
            raise dkim.DnsTimeoutError(str(exc)) from exc
        return found[0] if found else None

    probe = PROBE.replace(b"{domain}", key.domain.encode("ascii"))
    signed = Signer().sign(probe, [key])
    try:
        verified = dkim.DKIM(signed).verify(dnsfunc=lookup)
    except dkim.DnsTimeoutError as exc:
        return _unknown("dkim", name, exc)
    except dkim.DKIMException as exc:
        verified = False
        reason = str(exc)
    else:
        reason = ""
    if not verified:
        return Finding(
            "dkim",
            name,
            FAIL,
            f"The key at {name} is ours, but a message signed now does not verify "
            f"against it{': ' + reason if reason else ''}.",
            f"Publish exactly: {ours}",
        )
    return Finding(
        "dkim", name, PASS, f"{name} has the gateway's key; a message signed now verifies."
    )


# -- DMARC and MX ------------------------------------------------------------------------


def check_dmarc(config: Config, resolver: Resolver, domain: str) -> Finding:
    name = f"_dmarc.{domain}"
    try:
        records = [t for t in txt_of(resolver, name) if t.lower().startswith("v=dmarc1")]
    except DnsTempError as exc:
        return _unknown("dmarc", name, exc)
    if not records:
        return Finding(
            "dmarc",
            name,
            FAIL,
            f"{domain} has no DMARC record: receivers such as Gmail and Yahoo expect one, "
            "and nobody reports to you who sends as your domain.",
            "Publish the DMARC record shown (p=none to start).",
        )
    if len(records) > 1:
        return Finding(
            "dmarc",
            name,
            FAIL,
            f"{name} has {len(records)} DMARC records; receivers then ignore DMARC.",
            "Keep one.",
        )
    tags = _tags(records[0])
    policy = tags.get("p", "")
    if policy not in ("none", "quarantine", "reject"):
        return Finding(
            "dmarc",
            name,
            FAIL,
            f"The DMARC record's policy is {policy or 'missing'!r}; it must be none, "
            "quarantine or reject.",
            "Publish the DMARC record shown.",
        )
    strict = [t for t in ("adkim", "aspf") if tags.get(t) == "s"]
    words = f"DMARC policy p={policy}"
    if strict:
        words += (
            f", strict alignment ({', '.join(strict)}): only mail from exactly {domain} "
            "passes; the gateway signs with d={domain} itself, so its mail does"
        )
    reports = f"{config.dns_checks.dmarc_reports_local}@{config.dropbox.domain}".lower()
    if reports not in tags.get("rua", "").lower():
        return Finding(
            "dmarc",
            name,
            WARN,
            words + "; aggregate reports do not come to the gateway.",
            f"Add mailto:{reports} to rua= to see here who sends as {domain}.",
        )
    return Finding("dmarc", name, PASS, words + "; aggregate reports come to the gateway.")


def check_mx(config: Config, resolver: Resolver) -> Finding:
    domain = config.dropbox.domain
    host = config.dropbox.hostname.rstrip(".").lower()
    try:
        records = resolver.mx(domain)
    except DnsTempError as exc:
        return _unknown("mx", domain, exc)
    names = [r.exchange.lower() for r in records]
    if host in names:
        return Finding("mx", domain, PASS, f"{domain}'s MX points at {host}.")
    if not names:
        return Finding(
            "mx",
            domain,
            FAIL,
            f"{domain} has no MX record: mail to dropbox addresses goes nowhere.",
            f"Publish: {domain}. MX 10 {host}.",
        )
    return Finding(
        "mx",
        domain,
        FAIL,
        f"{domain}'s MX is currently set to {', '.join(names)} but should be {host}.",
        f"Publish: {domain}. MX 10 {host}.",
    )


# -- helpers ---------------------------------------------------------------------------


def txt_of(resolver: Resolver, name: str) -> list[str]:
    """The TXT records at `name`, each its strings joined, as text."""
    return [t.decode("utf-8", "replace").strip() for t in resolver.txt(name)]


def _unknown(kind: str, name: str, exc: BaseException) -> Finding:
    return Finding(
        kind,
        name,
        UNKNOWN,
        f"DNS did not answer for {name} ({exc}). This is not a failure; it is checked again later.",
    )


def _tags(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip().lower()] = value.strip()
    return out


def _tag(text: str, name: str) -> str:
    return "".join(_tags(text).get(name, "").split())


def _short(value: str) -> str:
    return value if len(value) <= 16 else f"{value[:8]}…{value[-6:]}"
