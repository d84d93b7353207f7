"""SenderVerifier: SPF (pyspf), DKIM (dkimpy) and DMARC alignment of a dropbox message.

    verify(ip, helo, mail_from, raw) -> Verdict (blocking: DNS; run off the loop)
    Verdict.verifies(address)  SPF pass for a MAIL FROM domain aligned with the
                               address's domain, or a DKIM pass (without l=)
                               with d= aligned with it (DMARC relaxed alignment:
                               same organizational domain, RFC 7489 3.1)

Every DNS query goes through gateway.resolver: pyspf's through gateway.spf_dns
(made current for the verification), dkimpy's as `dnsfunc=`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dkim
import spf
from publicsuffixlist import PublicSuffixList

from gateway import spf_dns
from gateway.addresses import domain_of, normalize
from gateway.resolver import DnsTempError, Resolver

log = logging.getLogger(__name__)

MAX_SIGNATURES = 5
_PSL = PublicSuffixList()


def organizational_domain(domain: str) -> str:
    domain = domain.lower().rstrip(".")
    return _PSL.privatesuffix(domain) or domain


def aligned(a: str, b: str) -> bool:
    return bool(a) and bool(b) and organizational_domain(a) == organizational_domain(b)


@dataclass(frozen=True)
class DkimResult:
    result: str  # pass | fail | temperror | permerror | neutral (l= used)
    domain: str


@dataclass(frozen=True)
class Verdict:
    spf: str
    spf_domain: str
    dkim: tuple[DkimResult, ...] = ()
    dmarc: str = "none"
    from_domain: str = ""
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def verifies(self, address: str) -> bool:
        domain = domain_of(address)
        if self.spf == "pass" and aligned(self.spf_domain, domain):
            return True
        return any(d.result == "pass" and aligned(d.domain, domain) for d in self.dkim)

    def summary(self) -> str:
        dkim_text = ",".join(f"{d.result}({d.domain})" for d in self.dkim) or "none"
        return f"spf={self.spf}({self.spf_domain or '-'}) dkim={dkim_text} dmarc={self.dmarc}"

    def authentication_results(self, authserv_id: str) -> str:
        """An RFC 8601 Authentication-Results value (kept with the sighting)."""
        parts = [authserv_id, f"spf={self.spf} smtp.mailfrom={self.spf_domain or '-'}"]
        parts += [f"dkim={d.result} header.d={d.domain}" for d in self.dkim] or ["dkim=none"]
        parts.append(f"dmarc={self.dmarc} header.from={self.from_domain or '-'}")
        return "; ".join(parts)


class SenderVerifier:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def verify(self, ip: str, helo: str, mail_from: str, raw: bytes, from_domain: str) -> Verdict:
        with spf_dns.using(self.resolver):
            spf_result, spf_domain = self._spf(ip, helo, mail_from)
            signatures = self._dkim(raw)
            dmarc = self._dmarc(from_domain, spf_result, spf_domain, signatures)
        return Verdict(spf_result, spf_domain, signatures, dmarc, from_domain)

    def _spf(self, ip: str, helo: str, mail_from: str) -> tuple[str, str]:
        # RFC 7208 2.4: with a null reverse-path, the HELO identity is checked.
        sender = mail_from or f"postmaster@{helo}"
        domain = domain_of(normalize(sender) or sender)
        try:
            result, _explanation = spf.check2(i=ip, s=sender, h=helo or domain)
        except Exception as exc:  # pyspf raises on odd input; never take the server down
            log.warning("SPF check of %s from %s failed: %s", sender, ip, exc)
            return "temperror", domain
        return str(result), domain

    def _dkim(self, raw: bytes) -> tuple[DkimResult, ...]:
        try:
            checker = dkim.DKIM(raw)
            count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
        except Exception:
            return ()
        out = []
        for idx in range(min(count, MAX_SIGNATURES)):
            out.append(self._one_dkim(raw, idx))
        return tuple(out)

    def _one_dkim(self, raw: bytes, idx: int) -> DkimResult:
        checker = dkim.DKIM(raw)
        dns_failed: list[str] = []

        def txt(name: bytes | str, timeout: int = 5) -> bytes | None:
            text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
            try:
                records = self.resolver.txt(text.rstrip("."))
            except DnsTempError as exc:
                dns_failed.append(str(exc))  # dkimpy reports a DNS timeout as a plain False
                raise dkim.DnsTimeoutError(str(exc)) from exc
            return records[0] if records else None

        try:
            ok = checker.verify(idx=idx, dnsfunc=txt)
        except dkim.ValidationError:  # e.g. body hash mismatch: the signature fails
            return DkimResult("fail", _text(checker.domain))
        except Exception:  # malformed signature or key
            return DkimResult("permerror", _text(checker.domain))
        domain = _text(checker.domain)
        if dns_failed:
            return DkimResult("temperror", domain)
        fields = checker.signature_fields or {}
        if ok and b"l" in fields:
            # A body-length limit lets anyone append content: not trusted here.
            return DkimResult("neutral", domain)
        return DkimResult("pass" if ok else "fail", domain)

    def _dmarc(
        self, from_domain: str, spf_result: str, spf_domain: str, sigs: tuple[DkimResult, ...]
    ) -> str:
        if not from_domain:
            return "none"
        try:
            records = self.resolver.txt(f"_dmarc.{from_domain}")
            org = organizational_domain(from_domain)
            if not any(r.startswith(b"v=DMARC1") for r in records) and org != from_domain:
                records = self.resolver.txt(f"_dmarc.{org}")
        except DnsTempError:
            return "temperror"
        if not any(r.startswith(b"v=DMARC1") for r in records):
            return "none"
        if spf_result == "pass" and aligned(spf_domain, from_domain):
            return "pass"
        if any(d.result == "pass" and aligned(d.domain, from_domain) for d in sigs):
            return "pass"
        return "fail"


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value
