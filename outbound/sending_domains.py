"""The account's sending domains: added (with a DKIM key if they have none), their
records to publish, and their live check, kept with its time.

A check's outcome is stored on the domain: its status, each finding, when, and how
many checks in a row failed. A DNS that did not answer ("unknown") neither counts
as a failure nor clears one: the count waits for a real answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.db import Database
from gateway.errors import Conflict, NotFound
from gateway.models import Account, DkimKey, SendingDomain, utcnow
from gateway.resolver import DnsTempError, Resolver
from gateway.vault import Vault
from outbound import dns_checks, dns_records
from outbound.dkim_keys import ACTIVE, SigningKey, generate, normalized


@dataclass(frozen=True)
class Checked:
    domain: str
    status: str
    findings: list[dns_checks.Finding]
    failures: int  # failed checks in a row, this one included


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
    """What to publish for the domain, each with what DNS holds there now."""
    keys = list(
        session.scalars(
            select(DkimKey)
            .where(DkimKey.account_id == row.account_id, DkimKey.domain == row.domain)
            .order_by(DkimKey.state, DkimKey.id)
        )
    )

    def found(name: str) -> list[str]:
        try:
            return [t.decode("utf-8", "replace") for t in resolver.txt(name)]
        except DnsTempError:
            return []

    out = [dns_records.spf(row.domain, found(row.domain), config)]
    names = {f"{k.selector}._domainkey.{k.domain}" for k in keys}
    out += dns_records.dkim(keys, {n: found(n) for n in names})
    out += dns_records.dmarc(row.domain, found(f"_dmarc.{row.domain}"), config)
    return out


def mx_record(config: Config, resolver: Resolver) -> dns_records.Record:
    try:
        found = [f"{r.preference} {r.exchange}." for r in resolver.mx(config.dropbox.domain)]
    except DnsTempError:
        found = []
    return dns_records.mx(config, found)


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
    with db.session() as session:
        row = get_domain(session, account_id, name)
        if status == dns_checks.FAIL:
            row.failures += 1
        elif status != dns_checks.UNKNOWN:
            row.failures = 0
        row.status = status
        row.checks = [f.as_dict() for f in findings]
        row.checked_at = utcnow()
        failures = row.failures
    return Checked(name, status, findings, failures)


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
