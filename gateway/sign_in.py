"""Sign-in with email and password, paused after too many failures.

Failed sign-ins are counted per IP address and per address signed in to, over
`[web] sign_in_window`, in the database (so every node counts them together).
Past `sign_in_failures_per_ip` or `sign_in_failures_per_user`, sign-in from that
IP or to that address is refused, with how long to wait, before the password is
even looked at: guessing gets nowhere, and no answer tells whether the password
was right. A successful sign-in clears the address's count.
"""

from __future__ import annotations

import math
from datetime import timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.accounts import PASSWORDS
from gateway.addresses import parse_one
from gateway.config import Config
from gateway.errors import TooManyAttempts
from gateway.models import SignInFailure, User, utcnow

WRONG = "The email address or the password is not right."  # never says which
# The submission port's AUTH failures share the table under keys of their own
# ("smtp:ip:..."), counted over [submission] auth_failure_window (outbound.submission).
SMTP_FAILURES = "smtp:"


def sign_in(session: Session, config: Config, email: str, password: str, ip: str) -> User | None:
    """The user whose email and password these are, or None (the failure is counted in
    `session`: commit it). TooManyAttempts, before anything is looked at, while paused."""
    parsed = parse_one(email.strip(), config.addresses.local_part_case)
    address = parsed.normalized if parsed is not None else email.strip().lower()[:320]
    keys = (f"ip:{ip}", f"user:{address}")
    _check_pause(session, config, keys)
    user = session.scalar(select(User).where(User.email == address)) if parsed else None
    if user is None or user.password_hash is None:
        PASSWORDS.hash(password)  # as long as a wrong password: no enumeration by timing
        _failed(session, config, keys)
        return None
    try:
        PASSWORDS.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        _failed(session, config, keys)
        return None
    session.execute(delete(SignInFailure).where(SignInFailure.key == keys[1]))
    return user


def _check_pause(session: Session, config: Config, keys: tuple[str, str]) -> None:
    web = config.web
    since = utcnow() - timedelta(seconds=web.sign_in_window)
    limits = ((keys[0], web.sign_in_failures_per_ip), (keys[1], web.sign_in_failures_per_user))
    for key, limit in limits:
        count, oldest = session.execute(
            select(func.count(), func.min(SignInFailure.at)).where(
                SignInFailure.key == key, SignInFailure.at > since
            )
        ).one()
        if limit and count >= limit and oldest is not None:
            wait = math.ceil((oldest - since).total_seconds())
            minutes = max(1, math.ceil(wait / 60))
            who = "from this network" if key.startswith("ip:") else "for this address"
            raise TooManyAttempts(
                f"Too many failed sign-ins {who}. Try again in {minutes} minute"
                f"{'s' if minutes > 1 else ''}, or ask an admin to set a new password.",
                retry_after=max(1, wait),
            )


def _failed(session: Session, config: Config, keys: tuple[str, str]) -> None:
    now = utcnow()
    session.add_all([SignInFailure(key=key[:400], at=now) for key in keys])
    old = now - timedelta(seconds=config.web.sign_in_window)
    session.execute(
        delete(SignInFailure).where(
            SignInFailure.at < old, SignInFailure.key.not_like(f"{SMTP_FAILURES}%")
        )
    )
