"""pyspf's DNS, answered by gateway.resolver: the one place pyspf's look-up hook is set.

pyspf resolves through a module-level function (`spf.DNSLookup`); it is pointed here
once, at import, and answers from the Resolver that `using()` makes current for
the calling thread or task. A timeout or SERVFAIL becomes pyspf's TempError (a
temperror result), never a failure.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import spf

from gateway.resolver import DnsTempError, Resolver

_CURRENT: contextvars.ContextVar[Resolver] = contextvars.ContextVar("spf_resolver")


@contextlib.contextmanager
def using(resolver: Resolver) -> Iterator[None]:
    """pyspf's look-ups inside the block go to `resolver`."""
    token = _CURRENT.set(resolver)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _lookup(name: str, qtype: str, *args: Any, **kwargs: Any) -> list[Any]:
    resolver = _CURRENT.get()
    key = (name, qtype)
    try:
        if qtype in ("A", "AAAA"):
            return [(key, address) for address in resolver.addresses(name, qtype)]
        if qtype == "MX":
            return [(key, (r.preference, r.exchange)) for r in resolver.mx(name)]
        if qtype == "PTR":
            return [(key, target) for target in resolver.ptr(name)]
        if qtype in ("TXT", "SPF"):
            return [(key, strings) for strings in resolver.txt_strings(name, qtype)]
    except DnsTempError as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    return []


spf.DNSLookup = _lookup
