"""Accounts and users: creation, look-up, dropbox addresses and one-time passwords."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from gateway.addresses import parse_one
from gateway.config import Config
from gateway.errors import Conflict, InputError, NotFound
from gateway.matching import match_contacts
from gateway.models import Account, Plan, User, UserAddress

# OWASP's argon2id floor: 19 MiB, 2 passes, 1 lane.
PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
TOKEN_BYTES = 15  # 120 bits; base32 keeps it case-insensitive like a local part


def new_dropbox_token() -> str:
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").lower()


def new_password() -> str:
    return secrets.token_urlsafe(15)


def dropbox_address(config: Config, user: User) -> str:
    local = config.dropbox.address_format.replace("{token}", user.dropbox_token)
    return f"{local}@{config.dropbox.domain}"


def create_account(session: Session, name: str, plan: Plan = Plan.FREE) -> Account:
    if session.scalar(select(Account).where(Account.name == name)) is not None:
        raise Conflict(f"account {name!r} already exists")
    account = Account(name=name, plan=plan.value, auto_create_contacts=False, blocked_domains=[])
    session.add(account)
    session.flush()
    return account


def get_account(session: Session, name: str | None = None) -> Account:
    """The named account, or the only one when no name is given."""
    if name is not None:
        account = session.scalar(select(Account).where(Account.name == name))
        if account is None:
            raise NotFound(f"no account named {name!r}")
        return account
    accounts = session.scalars(select(Account).order_by(Account.id).limit(2)).all()
    if not accounts:
        raise NotFound("no account yet: run `gateway init` first")
    if len(accounts) > 1:
        raise InputError("--account", "there are several accounts: name one")
    return accounts[0]


def add_user(
    session: Session,
    config: Config,
    account: Account,
    email: str,
    name: str = "",
    aliases: Sequence[str] = (),
    admin: bool = False,
) -> tuple[User, str | None]:
    """Create a user; returns it with its one-time password (admins only)."""
    case = config.addresses.local_part_case
    keys: list[str] = []
    for address in [email, *aliases]:
        parsed = parse_one(address, case)
        if parsed is None:
            raise InputError(address, "not a valid email address")
        if parsed.normalized not in keys:
            keys.append(parsed.normalized)
    login = keys[0]
    if session.scalar(select(func.count()).select_from(User).where(User.email == login)):
        raise Conflict(f"user {login} already exists")
    taken = session.scalars(
        select(UserAddress.address).where(
            UserAddress.account_id == account.id, UserAddress.address.in_(keys)
        )
    ).all()
    if taken:
        raise Conflict(f"{taken[0]} is already an address of another user")
    contacts = match_contacts(session, account.id, keys)
    if contacts:
        address = sorted(contacts)[0]
        raise Conflict(
            f"{address} is a contact (id {contacts[address]}); remove the contact first "
            "(`gateway contacts remove`): users are never contacts"
        )
    password = new_password() if admin else None
    user = User(
        account_id=account.id,
        email=login,
        name=name,
        is_admin=admin,
        password_hash=PASSWORDS.hash(password) if password else None,
        password_must_change=password is not None,
        dropbox_token=new_dropbox_token(),
    )
    user.addresses = [
        UserAddress(account_id=account.id, address=key, is_primary=(key == login)) for key in keys
    ]
    session.add(user)
    session.flush()
    return user, password


def domain_list(given: Sequence[str]) -> list[str]:
    """Blocked domains as kept: lower case, no trailing dot, each once; InputError
    naming one that is not a domain name."""
    out: list[str] = []
    for raw in given:
        domain = raw.strip().lower().rstrip(".")
        if not domain or "@" in domain or any(c.isspace() or ord(c) < 32 for c in domain):
            raise InputError("blocked_domains", f"{raw!r} is not a domain name")
        if domain not in out:
            out.append(domain)
    return out


def rotate_dropbox(session: Session, config: Config, email: str) -> User:
    """Give the user a new dropbox token: the old address is refused from now on."""
    user = get_user(session, config, email)
    user.dropbox_token = new_dropbox_token()
    return user


def get_user(session: Session, config: Config, email: str) -> User:
    parsed = parse_one(email, config.addresses.local_part_case)
    user = None
    if parsed is not None:
        user = session.scalar(
            select(User)
            .where(User.email == parsed.normalized)
            .options(selectinload(User.addresses))
        )
    if user is None:
        raise NotFound(f"no user {email}")
    return user


def list_users(session: Session, account: Account) -> Sequence[User]:
    return session.scalars(
        select(User)
        .where(User.account_id == account.id)
        .options(selectinload(User.addresses))
        .order_by(User.id)
    ).all()


MIN_PASSWORD = 12


def set_password(
    session: Session, config: Config, email: str, password: str, must_change: bool = False
) -> User:
    """A new password for the user (argon2id), or InputError saying why not."""
    user = get_user(session, config, email)
    if len(password) < MIN_PASSWORD:
        raise InputError("password", f"must be at least {MIN_PASSWORD} characters")
    if password.strip().lower() == user.email.lower():
        raise InputError("password", "must not be the user's address")
    user.password_hash = PASSWORDS.hash(password)
    user.password_must_change = must_change
    return user
