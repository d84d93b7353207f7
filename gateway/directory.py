"""AccountDirectory: who belongs to an account (its users' addresses, the dropbox domain).

Loaded once per batch of messages; the pipeline asks it for direction and for
the addresses that can never be contacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.addresses import domain_of, local_part_of, normalize
from gateway.config import Config
from gateway.models import Account, UserAddress

_ACCOUNT = select(Account.auto_create_contacts, Account.blocked_domains).where(
    Account.id == bindparam("b_id")
)
_ADDRESSES = select(UserAddress.address).where(UserAddress.account_id == bindparam("b_id"))


@dataclass(frozen=True)
class AccountDirectory:
    account_id: int
    auto_create: bool
    user_addresses: frozenset[str]
    dropbox_domain: str
    blocked_domains: frozenset[str]
    excluded_local_parts: tuple[str, ...]

    @classmethod
    def load(cls, session: Session, account: Account, config: Config) -> AccountDirectory:
        return cls._build(
            session, account.id, account.auto_create_contacts, account.blocked_domains, config
        )

    @classmethod
    def load_by_id(cls, session: Session, account_id: int, config: Config) -> AccountDirectory:
        """load() without the ORM (prebuilt statements: the pipeline runs it per batch)."""
        connection = session.connection()
        row = connection.execute(_ACCOUNT, {"b_id": account_id}).one()
        return cls._build(session, account_id, row[0], row[1], config)

    @classmethod
    def _build(
        cls,
        session: Session,
        account_id: int,
        auto_create: bool,
        account_blocked: list[str] | None,
        config: Config,
    ) -> AccountDirectory:
        addresses = session.connection().execute(_ADDRESSES, {"b_id": account_id}).scalars().all()
        dropbox = normalize(f"x@{config.dropbox.domain}") or ""
        blocked = {d.strip().lower().rstrip(".") for d in config.contacts.blocked_domains}
        blocked |= {d.strip().lower().rstrip(".") for d in account_blocked or ()}
        return cls(
            account_id=account_id,
            auto_create=auto_create,
            user_addresses=frozenset(addresses),
            dropbox_domain=domain_of(dropbox),
            blocked_domains=frozenset(_normalized_domain(d) for d in blocked if d),
            excluded_local_parts=tuple(p.lower() for p in config.contacts.excluded_local_parts),
        )

    def is_user(self, address: str) -> bool:
        return address in self.user_addresses

    def is_dropbox(self, address: str) -> bool:
        return domain_of(address) == self.dropbox_domain

    def can_be_contact(self, address: str) -> bool:
        """Never the account's users or its dropbox addresses."""
        return not self.is_user(address) and not self.is_dropbox(address)

    def can_auto_create(self, address: str) -> bool:
        if not self.can_be_contact(address):
            return False
        domain = domain_of(address)
        if any(domain == b or domain.endswith("." + b) for b in self.blocked_domains):
            return False
        local = local_part_of(address).lower()
        return not any(fnmatchcase(local, pattern) for pattern in self.excluded_local_parts)


def _normalized_domain(domain: str) -> str:
    key = normalize(f"x@{domain}")
    return domain_of(key) if key else domain
