"""DKIM keys per (domain, selector): generate, list, rotate, remove, and the TXT record
to publish. Private keys are kept encrypted with the gateway's vault (the secret key
file); only the public half ever leaves in clear.

RSA keys are 2048 bits by default; an ed25519 key beside the RSA one makes every
message carry both signatures (RFC 8463: receivers that do not know ed25519 still
check the RSA one).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.addresses import normalize_domain
from gateway.errors import Conflict, InputError, NotFound
from gateway.models import Account, DkimKey, utcnow
from gateway.prepared import prepared
from gateway.vault import Vault

ALGORITHMS = ("rsa", "ed25519")
RSA_BITS = 2048
ACTIVE, RETIRED = "active", "retired"
_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str  # rsa | ed25519
    private_pem: str
    public_b64: str


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_b64: str  # the p= value


def new_key_pair(algorithm: str, bits: int = RSA_BITS) -> KeyPair:
    if algorithm == "rsa":
        private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=bits
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    elif algorithm == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(  # RFC 8463: the raw 32 bytes
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    else:
        raise InputError("--algorithm", f"must be one of {', '.join(ALGORITHMS)}")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return KeyPair(pem, base64.b64encode(public).decode("ascii"))


def generate(
    session: Session,
    vault: Vault,
    account: Account,
    domain: str,
    algorithm: str = "rsa",
    selector: str | None = None,
) -> DkimKey:
    """A new active key for `domain`; refused while one of the algorithm is active
    (that is what `rotate` is for)."""
    domain = _domain(domain)
    if _active(session, account.id, domain, algorithm) is not None:
        raise Conflict(f"{domain} has an active {algorithm} key: use `gateway dkim rotate`")
    return _add(session, vault, account, domain, algorithm, selector)


def rotate(
    session: Session,
    vault: Vault,
    account: Account,
    domain: str,
    algorithm: str = "rsa",
    selector: str | None = None,
) -> tuple[DkimKey, DkimKey | None]:
    """(the new active key, the one it replaces, now retired)."""
    domain = _domain(domain)
    old = _active(session, account.id, domain, algorithm)
    if old is not None:
        old.state = RETIRED
        session.flush()
    return _add(session, vault, account, domain, algorithm, selector), old


def remove(session: Session, domain: str, selector: str) -> DkimKey:
    key = session.scalar(
        select(DkimKey).where(DkimKey.domain == _domain(domain), DkimKey.selector == selector)
    )
    if key is None:
        raise NotFound(f"no DKIM key {selector}._domainkey.{domain}")
    session.delete(key)
    return key


def list_keys(session: Session, account: Account | None = None) -> Sequence[DkimKey]:
    query = select(DkimKey).order_by(DkimKey.domain, DkimKey.id)
    if account is not None:
        query = query.where(DkimKey.account_id == account.id)
    return session.scalars(query).all()


_ACTIVE_KEYS = prepared(
    "active_dkim_keys",
    lambda: (
        select(
            DkimKey.domain,
            DkimKey.selector,
            DkimKey.algorithm,
            DkimKey.private_key,
            DkimKey.public_key,
        )
        .where(
            DkimKey.account_id == bindparam("b_account"),
            DkimKey.domain == bindparam("b_domain"),
            DkimKey.state == ACTIVE,
        )
        .order_by(DkimKey.algorithm.desc())
    ),  # "rsa" before "ed25519"
)


def signing_keys(
    session: Session, decrypt: Callable[[str], str], account_id: int, domain: str
) -> list[SigningKey]:
    """The account's active keys for `domain`, decrypted (Vault.decrypt, or a cache of
    it), RSA first; none when the account has no key for it (it is then not signed:
    never with a d= it does not own). A prepared statement: it runs for every message."""
    connection = session.connection()
    rows = _ACTIVE_KEYS(connection).execute(
        connection, {"b_account": account_id, "b_domain": domain}
    )
    return [
        SigningKey(domain_, selector, algorithm, decrypt(private), public)
        for domain_, selector, algorithm, private, public in rows.fetchall()
    ]


def record(key: DkimKey) -> tuple[str, str]:
    """(DNS name, TXT value) to publish for `key`."""
    return f"{key.selector}._domainkey.{key.domain}", txt_value(key.algorithm, key.public_key)


def txt_value(algorithm: str, public_b64: str) -> str:
    return f"v=DKIM1; k={algorithm}; p={public_b64}"


def zone_line(key: DkimKey) -> str:
    """The record as a zone-file line, its text split in strings of at most 255."""
    name, value = record(key)
    chunks = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{name}. IN TXT ( {chunks} )"


def _add(
    session: Session,
    vault: Vault,
    account: Account,
    domain: str,
    algorithm: str,
    selector: str | None,
) -> DkimKey:
    selector = (selector or _default_selector(session, domain, algorithm)).lower()
    if not _SELECTOR.fullmatch(selector):
        raise InputError("--selector", f"{selector!r} is not a DNS label")
    taken = session.scalar(
        select(DkimKey.id).where(DkimKey.domain == domain, DkimKey.selector == selector)
    )
    if taken is not None:
        raise Conflict(f"{selector}._domainkey.{domain} exists already")
    pair = new_key_pair(algorithm)
    key = DkimKey(
        account_id=account.id,
        domain=domain,
        selector=selector,
        algorithm=algorithm,
        private_key=vault.encrypt(pair.private_pem),
        public_key=pair.public_b64,
        state=ACTIVE,
    )
    session.add(key)
    session.flush()
    return key


def _default_selector(session: Session, domain: str, algorithm: str) -> str:
    """gw<yyyymm>[-ed][-n]: dated, so a rotation gets a new name."""
    base = f"gw{utcnow():%Y%m}" + ("-ed" if algorithm == "ed25519" else "")
    taken = set(session.scalars(select(DkimKey.selector).where(DkimKey.domain == domain)))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _active(session: Session, account_id: int, domain: str, algorithm: str) -> DkimKey | None:
    return session.scalar(
        select(DkimKey).where(
            DkimKey.account_id == account_id,
            DkimKey.domain == domain,
            DkimKey.algorithm == algorithm,
            DkimKey.state == ACTIVE,
        )
    )


def normalized(text: str) -> str:
    """`text` as a domain name (lower case, IDNA), or InputError."""
    return _domain(text)


def _domain(text: str) -> str:
    domain = normalize_domain(text.strip())
    if domain is None or "." not in domain or domain.startswith("["):
        raise InputError("DOMAIN", f"{text!r} is not a domain name")
    return domain
