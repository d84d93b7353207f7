"""The account's sending domains: added (with a DKIM key if they have none), their
records to publish, and their live check, kept with its time.

A check's outcome is stored on the domain: its status, each finding, when, and how
many checks in a row failed. A DNS that did not answer ("unknown") neither counts
as a failure nor clears one: the count waits for a real answer. At [dns_checks]
alert_after failures in a row the domain counts as broken: `alerted_at` is set
(the pages show a banner to admins) and a domain.dns_failed event is emitted, once;
a check that passes (or only warns) clears it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway import events
from gateway.config import Config
from gateway.db import Database
from gateway.errors import Conflict, NotFound
from gateway.models import Account, DkimKey, SendingDomain, utcnow
from gateway.resolver import DnsTempError, Resolver
from gateway.vault import Vault
from outbound import dns_checks, dns_records
from outbound.dkim_keys import ACTIVE, SigningKey, generate, normalized

DNS_FAILED = "domain.dns_failed"


@dataclass(frozen=True)
class Checked:
    domain: str
    status: str
    findings: list[dns_checks.Finding]
    failures: int  # failed checks in a row, this one included
    alerted: bool  # this check made the domain count as broken


def add_domain(session: Session, vault: Vault, account: Account, domain: str) -> SendingDomain:
    """A sending domain of the account; its DKIM key is made if it has none."""
    name = normalized(domain)
    taken = session.scalar(select(SendingDomain).where(SendingDomain.domain == name))
    if taken is not None:
        raise Conflict(f"{name} is already a sending domain")
    row = SendingDomain(account_id=account.id, domain=name, checks=[], failures=0)
    session.add(row)
    has_key = session.scalar(
        select(DkimKey.id).where(
            DkimKey.account_id == account.id, DkimKey.domain == name, DkimKey.state == ACTIVE
        )
    )
    if has_key is None:
        generate(session, vault, account, name)
    session.flush()
    return row


def list_domains(session: Session, account_id: int) -> Sequence[SendingDomain]:
    return session.scalars(
        select(SendingDomain)
        .where(SendingDomain.account_id == account_id)
        .order_by(SendingDomain.domain)
    ).all()


def get_domain(session: Session, account_id: int, domain: str) -> SendingDomain:
    row = session.scalar(
        select(SendingDomain).where(
            SendingDomain.account_id == account_id, SendingDomain.domain == normalized(domain)
        )
    )
    if row is None:
        raise NotFound(f"{domain} is not a sending domain of this account")
    return row


def remove_domain(session: Session, account_id: int, domain: str) -> None:
    """No longer checked; its DKIM keys stay (`gateway dkim remove` deletes them)."""
    session.delete(get_domain(session, account_id, domain))


def records(
    session: Session, config: Config, resolver: Resolver, row: SendingDomain
) -> list[dns_records.Record]:
    """What to publish for the domain, each with what DNS holds there now; last, the
    dropbox domain's MX (every page of records shows it beside the domain's)."""
    keys = list(
        session.scalars(
            select(DkimKey)
            .where(DkimKey.account_id == row.account_id, DkimKey.domain == row.domain)
            .order_by(DkimKey.state, DkimKey.id)
        )
    )

    def found(name: str) -> list[str]:
        try:
            return dns_checks.txt_of(resolver, name)
        except DnsTempError:
            return []

    out = [dns_records.spf(row.domain, found(row.domain), config)]
    names = {f"{k.selector}._domainkey.{k.domain}" for k in keys}
    out += dns_records.dkim(keys, {n: found(n) for n in names})
    out += dns_records.dmarc(row.domain, found(f"_dmarc.{row.domain}"), config)
    return [*out, mx_record(config, resolver)]


def mx_record(config: Config, resolver: Resolver) -> dns_records.Record:
    try:
        found = [f"{r.preference} {r.exchange}." for r in resolver.mx(config.dropbox.domain)]
    except DnsTempError:
        found = []
    return dns_records.mx(config, found)


def with_dropbox(config: Config, checked: Checked) -> tuple[list[dns_checks.Finding], str]:
    """A check's findings and the dropbox MX's, and the worst status of them all."""
    findings = [*checked.findings, dns_checks.check_mx(config, Resolver(config.dns))]
    return findings, dns_checks.overall(findings)


def zone_file(rows: list[dns_records.Record]) -> str:
    lines = ["; the records the CRM Email Gateway asks you to publish"]
    lines += [r.zone_line for r in rows]
    return "\n".join(lines) + "\n"


def check(db: Database, config: Config, vault: Vault, account_id: int, domain: str) -> Checked:
    """Check the domain's records live (blocking: DNS) and store the outcome."""
    with db.read() as session:
        row = get_domain(session, account_id, domain)
        name = row.domain
        keys = [
            SigningKey(
                k.domain, k.selector, k.algorithm, vault.decrypt(k.private_key), k.public_key
            )
            for k in session.scalars(
                select(DkimKey).where(
                    DkimKey.account_id == account_id,
                    DkimKey.domain == name,
                    DkimKey.state == ACTIVE,
                )
            )
        ]
    findings = dns_checks.check_domain(config, Resolver(config.dns), name, keys)
    status = dns_checks.overall(findings)
    alerted = False
    with db.session() as session:
        row = get_domain(session, account_id, name)
        if status == dns_checks.FAIL:
            row.failures += 1
        elif status != dns_checks.UNKNOWN:
            row.failures = 0
            row.alerted_at = None  # fixed
        row.status = status
        row.checks = [f.as_dict() for f in findings]
        row.checked_at = utcnow()
        failures = row.failures
        if failures >= config.dns_checks.alert_after and row.alerted_at is None:
            row.alerted_at = row.checked_at
            alerted = True
            events.emit(
                session,
                account_id,
                DNS_FAILED,
                domain=name,
                failures=failures,
                checks=[f.as_dict() for f in findings if f.status == dns_checks.FAIL],
            )
    return Checked(name, status, findings, failures, alerted)


def due(db: Database, config: Config, limit: int = 20) -> list[tuple[int, str]]:
    """Domains whose last check is older than [dns_checks] interval, each claimed by
    moving its checked_at to now (a conditional update: of several nodes looking at
    once, one gets each domain); (account id, domain) of those this caller claimed."""
    horizon = utcnow() - timedelta(seconds=config.dns_checks.interval)
    with db.read() as session:
        candidates = session.execute(
            select(SendingDomain.id, SendingDomain.checked_at)
            .where((SendingDomain.checked_at.is_(None)) | (SendingDomain.checked_at < horizon))
            .order_by(SendingDomain.checked_at.asc().nulls_first(), SendingDomain.id)
            .limit(limit)
        ).all()
    claimed = []
    for domain_id, seen in candidates:
        with db.session() as session:
            same = (
                SendingDomain.checked_at.is_(None)
                if seen is None
                else SendingDomain.checked_at == seen
            )
            taken = session.execute(
                update(SendingDomain)
                .where(SendingDomain.id == domain_id, same)
                .values(checked_at=utcnow())
                .returning(SendingDomain.account_id, SendingDomain.domain)
            ).first()
            if taken is not None:
                claimed.append((taken.account_id, taken.domain))
    return claimed


def broken(session: Session, account_id: int) -> list[str]:
    """The account's domains that count as broken (the admins' banner)."""
    return list(
        session.scalars(
            select(SendingDomain.domain)
            .where(SendingDomain.account_id == account_id, SendingDomain.alerted_at.is_not(None))
            .order_by(SendingDomain.domain)
        )
    )


def summary(row: SendingDomain) -> dict[str, Any]:
    return {
        "id": row.id,
        "domain": row.domain,
        "status": row.status or "unchecked",
        "checked_at": _iso(row.checked_at),
        "failures": row.failures,
        "checks": row.checks,
    }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None
