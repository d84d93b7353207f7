"""What a sending domain should publish: SPF, DKIM, DMARC, and the dropbox domain's MX.

Each record is computed from config ([outbound] sending_ips and spf_include,
[dropbox] domain and hostname, [dns_checks] dmarc_reports_local), the domain's
DKIM keys, and what DNS holds now, so that publishing it never breaks what is
there: an SPF record already published gets the gateway's mechanisms merged in
before its `all` (never a second SPF record, which receivers treat as an error,
RFC 7208 3.2); a DMARC record already published is kept.

TXT values longer than 255 characters are published as several strings of one
record (RFC 7208 3.3, RFC 6376 3.6.2.2): `strings` gives them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Config
from gateway.models import DkimKey
from outbound.dkim_keys import ACTIVE, txt_value

MAX_LOOKUPS = 10  # RFC 7208 4.6.4: DNS-querying terms per SPF evaluation
LOOKUP_TERMS = ("include:", "a:", "a/", "mx:", "mx/", "ptr:", "exists:", "redirect=")


@dataclass
class Record:
    kind: str  # spf | dkim | dmarc | dmarc-authorization | mx
    name: str  # the full name, without the final dot
    type: str  # TXT | MX
    value: str
    zone: str = ""  # the zone the relative name is relative to
    found: list[str] = field(default_factory=list)  # what DNS holds there now
    notes: list[str] = field(default_factory=list)

    @property
    def relative(self) -> str:
        """The name as a zone's host field (@ for the zone itself)."""
        if self.name == self.zone:
            return "@"
        return self.name.removesuffix("." + self.zone) if self.zone else self.name

    @property
    def strings(self) -> list[str]:
        """The TXT value as DNS holds it: strings of at most 255 characters."""
        if self.type != "TXT":
            return [self.value]
        return [self.value[i : i + 255] for i in range(0, len(self.value), 255)] or [""]

    @property
    def zone_line(self) -> str:
        if self.type == "TXT":
            quoted = " ".join(f'"{s}"' for s in self.strings)
            return f"{self.name}. 3600 IN TXT {quoted}"
        return f"{self.name}. 3600 IN {self.type} {self.value}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "host": self.relative,
            "type": self.type,
            "value": self.value,
            "strings": self.strings,
            "found": self.found,
            "notes": self.notes,
        }


def mechanisms(config: Config) -> list[str]:
    """The SPF terms that allow the gateway's senders."""
    terms = []
    for text in config.outbound.sending_ips:
        ip = ipaddress.ip_address(text.strip())
        terms.append(f"ip{ip.version}:{ip}")
    if config.outbound.spf_include:
        terms.append(f"include:{config.outbound.spf_include.strip().rstrip('.')}")
    return terms


def spf(domain: str, published: list[str], config: Config) -> Record:
    """The one SPF record `domain` should have, merged into what it publishes."""
    wanted = mechanisms(config)
    spfs = [r for r in published if _is_spf(r)]
    record = Record("spf", domain, "TXT", "", zone=domain, found=spfs)
    if not wanted:
        record.notes.append(
            "Set [outbound] sending_ips (the addresses mail leaves from) or spf_include "
            "(your relay's SPF domain) so the gateway can say what to allow."
        )
    if len(spfs) > 1:
        record.notes.append(
            f"{domain} publishes {len(spfs)} SPF records: receivers treat that as an error "
            "(permerror) and SPF fails for all mail. Replace them with this one record."
        )
    if not spfs:
        record.value = " ".join(["v=spf1", *wanted, "~all"])
        record.notes.append("A new record: mail from other senders is marked suspicious (~all).")
    else:
        terms = [t for t in " ".join(spfs).split() if t.lower() != "v=spf1"]
        alls = [t for t in terms if t.lower().lstrip("+-~?") == "all"]
        redirects = [t for t in terms if t.lower().startswith("redirect=")]
        others = list(dict.fromkeys(t for t in terms if t not in alls and t not in redirects))
        missing = [w for w in wanted if w.lower() not in (t.lower() for t in others)]
        # One `all` (the first record's): what follows it would never be read.
        ending = alls[:1] or redirects[:1]
        where = "before its all term" if alls else "at its end"
        merged = others + missing + ending
        record.value = " ".join(["v=spf1", *merged])
        if not missing and len(spfs) == 1:
            record.notes.append("Your SPF record already allows the gateway: nothing to change.")
        elif missing:
            record.notes.append(f"Your SPF record, with {' '.join(missing)} added {where}.")
    lookups = lookup_terms(record.value)
    if lookups > MAX_LOOKUPS:
        record.notes.append(
            f"It has {lookups} DNS-querying terms at its top level alone; receivers allow "
            f"{MAX_LOOKUPS} in all (RFC 7208 4.6.4), so SPF would fail with permerror. "
            "Replace includes by ip4/ip6 terms, or drop senders you no longer use."
        )
    if len(record.value) > 255:
        record.notes.append(
            f"It is {len(record.value)} characters long: publish it as "
            f"{len(record.strings)} strings of one TXT record (the zone line does)."
        )
    return record


def lookup_terms(value: str) -> int:
    """How many terms of an SPF record make DNS queries (at its top level)."""
    count = 0
    for term in value.split()[1:]:
        bare = term.lower().lstrip("+-~?")
        if bare in ("a", "mx", "ptr") or bare.startswith(LOOKUP_TERMS):
            count += 1
    return count


def dkim(keys: list[DkimKey], found: dict[str, list[str]]) -> list[Record]:
    """A TXT record per key: the active ones, and during a rotation the retired ones
    (mail signed with them may still be on its way)."""
    out = []
    active = [k for k in keys if k.state == ACTIVE]
    for key in keys:
        name = f"{key.selector}._domainkey.{key.domain}"
        record = Record(
            "dkim",
            name,
            "TXT",
            txt_value(key.algorithm, key.public_key),
            zone=key.domain,
            found=found.get(name, []),
        )
        if key.state != ACTIVE:
            newer = ", ".join(k.selector for k in active if k.algorithm == key.algorithm)
            record.notes.append(
                f"The old {key.algorithm} key, replaced by {newer or 'a new key'} on "
                f"{key.created_at:%Y-%m-%d} or later: keep it published a week after the "
                "rotation (mail signed with it may still be delivered), then remove it "
                f"with `gateway dkim remove {key.domain} {key.selector}`."
            )
        out.append(record)
    return out


def dmarc(domain: str, published: list[str], config: Config) -> list[Record]:
    """The DMARC record (kept if one is published), and the authorization the report
    address's domain must publish to take reports for another domain (RFC 7489 7.1)."""
    reports = f"{config.dns_checks.dmarc_reports_local}@{config.dropbox.domain}"
    existing = [r for r in published if r.lower().startswith("v=dmarc1")]
    value = existing[0] if existing else f"v=DMARC1; p=none; rua=mailto:{reports}; fo=1"
    record = Record("dmarc", f"_dmarc.{domain}", "TXT", value, zone=domain, found=existing)
    if existing:
        record.notes.append("Your DMARC record is kept as it is.")
        if reports.lower() not in value.lower():
            record.notes.append(
                f"To read aggregate reports here, add mailto:{reports} to its rua= tag."
            )
    else:
        record.notes.append(
            "Starts at p=none: nothing is refused; receivers send daily reports of who "
            "sends as your domain. Once the reports show only aligned mail (SPF or DKIM "
            "passing for your domain), move to p=quarantine, then p=reject."
        )
    out = [record]
    report_domain = config.dropbox.domain
    if report_domain.lower() != domain.lower():
        out.append(
            Record(
                "dmarc-authorization",
                f"{domain}._report._dmarc.{report_domain}",
                "TXT",
                "v=DMARC1",
                zone=report_domain,
                notes=[
                    f"Published in {report_domain}'s zone: it lets {report_domain} receive "
                    f"DMARC reports for {domain} (RFC 7489 7.1)."
                ],
            )
        )
    return out


def mx(config: Config, found: list[str]) -> Record:
    """The dropbox domain's MX: mail to dropbox addresses must reach the gateway."""
    domain = config.dropbox.domain
    host = config.dropbox.hostname.rstrip(".")
    record = Record("mx", domain, "MX", f"10 {host}.", zone=domain, found=found)
    record.notes.append(
        f"Mail to dropbox addresses (…@{domain}) is delivered to {host}, which must "
        "resolve to the gateway's public address (port 25 open)."
    )
    return record


def _is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")
