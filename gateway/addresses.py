"""Address parsing and normalization: pure functions, no database.

Header values are parsed with the header objects of `email.policy.default`
(groups, comments, quoted local parts, RFC 2047 encoded words), never with the
legacy `getaddresses`/`parseaddr`, which pick the wrong mailbox for
CVE-2023-27043 shapes. Raw 8-bit header bytes (SMTPUTF8 local parts, IDN
U-labels) arrive as surrogate escapes and are decoded as UTF-8 first.

`normalize()` gives the key addresses are compared by: local part NFC (lower
case unless configured "exact", never accent-folded), domain lower case,
IDNA (UTS 46) A-label, no trailing dot.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from email import policy

import idna

_FACTORY = policy.default.header_factory
MAX_ADDRESS_LENGTH = 320
NORMALIZE_CACHE = 16_384  # addresses remembered by normalize(): about 3 MB
# Characters that never appear in a usable address, quoted or not.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\u0080-\u009f\u2028\u2029<>]")
_FORBIDDEN_IN_QUOTES = re.compile(r"[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]")
_QUOTED_LOCAL = re.compile(r'^"(?:[^"\\]|\\.)*"$')
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE = re.compile("[\udc80-\udcff]")
_DOMAIN_LITERAL = re.compile(r"^\[[^\[\]\\]+\]$")
_ASCII_DOMAIN = re.compile(r"[a-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox from a header: what was written and the key it matches by."""

    display_name: str
    addr_spec: str
    normalized: str


def fix_surrogates(value: str) -> str:
    """Turn surrogate-escaped raw 8-bit bytes back into text (UTF-8, else replaced)."""
    if not _SURROGATE.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace")


@functools.lru_cache(maxsize=NORMALIZE_CACHE)
def normalize(addr_spec: str, local_part_case: str = "lower") -> str | None:
    """The comparison key of `addr_spec`, or None when it is not a usable address.

    Cached: a mailbox's mail names the same correspondents again and again, and
    an IMAP header scan normalizes every address of every message."""
    addr_spec = unicodedata.normalize("NFC", addr_spec.strip())
    if not addr_spec or len(addr_spec) > MAX_ADDRESS_LENGTH or "@" not in addr_spec:
        return None
    local, _, domain = addr_spec.rpartition("@")
    if not local or not domain or _FORBIDDEN.search(domain):
        return None
    if _QUOTED_LOCAL.match(local):
        if _FORBIDDEN_IN_QUOTES.search(local):
            return None
    elif _FORBIDDEN.search(local):
        return None
    ascii_domain = _normalize_domain(domain)
    if ascii_domain is None:
        return None
    if local_part_case == "lower":
        local = local.lower()
    return f"{local}@{ascii_domain}"


@functools.lru_cache(maxsize=NORMALIZE_CACHE)
def _normalize_domain(domain: str) -> str | None:
    domain = domain.rstrip(".").lower()
    if not domain or ".." in domain or domain.startswith("."):
        return None
    if domain.startswith("["):
        return domain if _DOMAIN_LITERAL.match(domain) else None
    if domain.isascii():
        return domain if _ASCII_DOMAIN.fullmatch(domain) else None
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def normalize_domain(domain: str) -> str | None:
    """A domain's comparison key (lower case, IDNA A-labels, no trailing dot), or None."""
    return _normalize_domain(domain)


def domain_of(normalized: str) -> str:
    return normalized.rpartition("@")[2]


def local_part_of(normalized: str) -> str:
    return normalized.rpartition("@")[0]


# The common shapes, checked whole: `a@b.c`, `Name <a@b.c>`, `"Name" <a@b.c>`,
# comma-separated, plain ASCII, no comments, quotes inside names, encoded words
# or groups. Anything else goes to the full RFC 5322 parser.
_SIMPLE_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_SIMPLE_DOMAIN = (
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
_SIMPLE_NAME = r"[A-Za-z0-9][A-Za-z0-9 .'_-]*"
_SIMPLE_ITEM = re.compile(
    rf"\s*(?:(?P<name>{_SIMPLE_NAME}|\"{_SIMPLE_NAME}\")?\s*"
    rf"<(?P<angle>{_SIMPLE_LOCAL}@{_SIMPLE_DOMAIN})>|(?P<bare>{_SIMPLE_LOCAL}@{_SIMPLE_DOMAIN}))\s*"
)
_SIMPLE_SEPARATOR = re.compile(r",\s*")


def _simple_addresses(value: str, local_part_case: str) -> list[Address] | None:
    """The addresses of a header in one of the common shapes, else None."""
    if not value.isascii():
        return None
    out: list[Address] = []
    pos, end = 0, len(value)
    while True:
        match = _SIMPLE_ITEM.match(value, pos)
        if match is None:
            return None
        spec = match.group("angle") or match.group("bare")
        name = (match.group("name") or "").strip().strip('"')
        name = " ".join(name.split())
        key = normalize(spec, local_part_case)
        if key is None:
            return None
        out.append(Address(name, spec, key))
        pos = match.end()
        if pos == end:
            return out
        separator = _SIMPLE_SEPARATOR.match(value, pos)
        if separator is None or separator.end() == end:
            return None
        pos = separator.end()


_SIMPLE_ITEM_SHAPE = (
    rf"\s*(?:(?:{_SIMPLE_NAME}|\"{_SIMPLE_NAME}\")?\s*"
    rf"<{_SIMPLE_LOCAL}@{_SIMPLE_DOMAIN}>|{_SIMPLE_LOCAL}@{_SIMPLE_DOMAIN})\s*"
)
_SIMPLE_LIST = re.compile(rf"{_SIMPLE_ITEM_SHAPE}(?:,\s*{_SIMPLE_ITEM_SHAPE})*")
# In a list of that shape every address is either in <> or bare; names hold no "@".
_SIMPLE_SPEC = re.compile(
    rf"<({_SIMPLE_LOCAL}@{_SIMPLE_DOMAIN})>|({_SIMPLE_LOCAL}@{_SIMPLE_DOMAIN})"
)


def simple_address_keys(value: str, local_part_case: str = "lower") -> list[str] | None:
    """The normalized addresses of a header value in one of the common shapes, as
    parse_address_list() would give them (a property test holds the two equal), or
    None: one regular expression for the whole list instead of a match per item and
    no Address objects, for a header scan that reads thousands of messages."""
    value = _FOLD.sub("", value)
    if not value.isascii() or _SIMPLE_LIST.fullmatch(value) is None:
        return None
    keys: list[str] = []
    for angle, bare in _SIMPLE_SPEC.findall(value):
        key = normalize(angle or bare, local_part_case)
        if key is None:
            return None
        keys.append(key)
    return keys


def parse_address_list(value: str, local_part_case: str = "lower") -> list[Address]:
    """Every usable mailbox in one header value (To, Cc, From, ...); never raises.

    Groups contribute their members (`undisclosed-recipients:;` none). Display
    names stay display names even when an encoded word decodes to something
    that looks like an address.
    """
    # RFC 5322 2.2.3: unfold first (the stdlib parser drops a display name that
    # follows a fold).
    value = _FOLD.sub("", fix_surrogates(value))
    simple = _simple_addresses(value, local_part_case)
    if simple is not None:
        return simple
    return full_parse_address_list(value, local_part_case)


def full_parse_address_list(value: str, local_part_case: str = "lower") -> list[Address]:
    """parse_address_list() through the stdlib RFC 5322 parser only."""
    out: list[Address] = []
    try:
        for mailbox in _FACTORY("to", value).addresses:
            username, domain = mailbox.username, mailbox.domain
            if not username or not domain:
                continue
            addr_spec = mailbox.addr_spec  # local part quoted only where it must be
            key = normalize(addr_spec, local_part_case)
            if key is not None:
                out.append(Address(mailbox.display_name or "", addr_spec, key))
    except Exception:
        # The stdlib parser still raises on some hostile inputs; fall back to
        # addr-specs written outside comments and quotes in the raw text.
        return _fallback_addresses(value, local_part_case)
    return out


_COMMENT_OR_QUOTED = re.compile(r'\((?:[^()\\]|\\.)*\)|"(?:[^"\\]|\\.)*"|=\?[^?]*\?[^?]*\?[^?]*\?=')
_ADDR_SPEC = re.compile(r"[^\s<>(),;:\"@\[\]]+@[^\s<>(),;:\"@\[\]]+")


def _fallback_addresses(value: str, local_part_case: str) -> list[Address]:
    text = _COMMENT_OR_QUOTED.sub(" ", value)
    out: list[Address] = []
    for match in _ADDR_SPEC.finditer(text):
        key = normalize(match.group(0), local_part_case)
        if key is not None:
            out.append(Address("", match.group(0), key))
    return out


def parse_one(text: str, local_part_case: str = "lower") -> Address | None:
    """One typed address (`a@b`, `"a b"@c`, `Name <a@b>`), or None if it is not one.

    Goes through the same header parser as mail, so a quoted local part typed
    by a person matches the same address in a header.
    """
    if not text.strip() or _FORBIDDEN_TYPED.search(text):
        return None
    found = parse_address_list(text, local_part_case)
    return found[0] if len(found) == 1 else None


_FORBIDDEN_TYPED = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
