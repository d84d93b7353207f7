"""The composition root: every role and every command of `gateway`, by name.

As Mailman names its runner classes in its configuration, each role here names the
factory that builds it ("module:function", called with a gateway.role.RoleContext)
and where `gateway serve` runs it when it has worker processes. This table is the
one place that knows the role packages (inbound, outbound, admin): gateway/ imports
none of them (import-linter holds that, pyproject.toml), and a test holds that
nothing else in gateway/ names them. Adding a role is one entry here.

COMMANDS lists the modules that add verbs to the `gateway` command (each has
`register(verbs)`): the core's, then those that live with their role.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.role import Role, RoleContext

# Where a role runs when [serve] workers > 0 (gateway.supervisor):
LISTENING = "listening"  # in every SMTP worker, on the sockets the supervisor shares
BACKGROUND = "background"  # in the one background worker
OWN_PROCESS = "own process"  # in workers of its own ([outbound] processes of them)


@dataclass(frozen=True)
class RoleEntry:
    name: str
    factory: str  # "module:function", function(RoleContext) -> Role
    placement: str
    summary: str
    listens: tuple[str, ...] = ()  # its listening addresses' config keys ("table.key")


ROLES: tuple[RoleEntry, ...] = (
    RoleEntry(
        "dropbox",
        "inbound.dropbox:build",
        LISTENING,
        "the BCC dropbox (SMTP)",
        ("dropbox.listen",),
    ),
    RoleEntry(
        "pipeline",
        "gateway.pipeline_role:build",
        BACKGROUND,
        "finishes every stored message, including those a crash interrupted",
    ),
    RoleEntry("imap", "inbound.imap.service:build", BACKGROUND, "syncs every connected mailbox"),
    RoleEntry(
        "web",
        "admin.server:build",
        LISTENING,
        "the HTTP server: /api/v1, /metrics, /healthz",
        ("web.listen",),
    ),
    RoleEntry(
        "submission",
        "outbound.submission:build",
        BACKGROUND,
        "SMTP AUTH for the CRM: queues its mail",
        ("submission.listen", "submission.tls_listen"),
    ),
    RoleEntry(
        "delivery",
        "outbound.delivery_role:build",
        OWN_PROCESS,
        "sends queued mail by each user's route, copies it to Sent",
    ),
    RoleEntry(
        "webhooks",
        "admin.webhook_role:build",
        BACKGROUND,
        "delivers events to the CRM's webhook endpoints",
    ),
    RoleEntry(
        "dns",
        "outbound.dns_role:build",
        BACKGROUND,
        "re-checks the sending domains' SPF, DKIM and DMARC records",
    ),
    RoleEntry(
        "calendar",
        "inbound.calendar.role:build",
        BACKGROUND,
        "syncs the calendars of connected mailboxes (CalDAV, Microsoft Graph)",
    ),
    RoleEntry(
        "housekeeping",
        "gateway.housekeeping:build",
        BACKGROUND,
        "the periodic cleanup and retention jobs, each on one node per period",
    ),
)
ROLE_NAMES: tuple[str, ...] = tuple(entry.name for entry in ROLES)

COMMANDS: tuple[str, ...] = (
    "gateway.cli.setup",  # init, migrate, serve, config
    "gateway.cli.users",  # user, user token
    "gateway.cli.tokens",  # token (the account's, with scopes)
    "gateway.cli.webhooks",  # webhook
    "gateway.cli.contacts",  # contacts
    "gateway.cli.mail",  # ingest, messages
    "inbound.cli",  # mailbox, quarantine
    "outbound.cli",  # dkim, domain, dns, queue, user route
)


def entry(name: str) -> RoleEntry:
    for role in ROLES:
        if role.name == name:
            return role
    raise KeyError(name)


def placed(names: Sequence[str], placement: str) -> tuple[str, ...]:
    """Those of `names` that run in `placement`, in the order given."""
    return tuple(n for n in names if entry(n).placement == placement)


def factory(name: str) -> Callable[[RoleContext], Role]:
    """The function that builds role `name`."""
    built: Callable[[RoleContext], Role] = _load(entry(name).factory)
    return built


def build_roles(names: Sequence[str], ctx: RoleContext) -> dict[str, Role]:
    """The roles `names` of one process, built in this table's order (so that every
    listener of a signal is connected before any role starts)."""
    check_roles(names)
    return {name: factory(name)(ctx) for name in ROLE_NAMES if name in names}


def check_roles(names: Sequence[str]) -> None:
    for name in names:
        if name not in ROLE_NAMES:
            known = ", ".join(ROLE_NAMES)
            raise ConfigError("serve.roles", "--roles", f"unknown role {name!r} (known: {known})")


def summary(names: Sequence[str], config: Config) -> list[str]:
    """A line for each role of `names`: what it does, and where it listens."""
    lines = []
    for role in ROLES:
        if role.name not in names:
            continue
        where = []
        for key in role.listens:
            table, name = key.split(".")
            value = getattr(getattr(config, table), name)
            if value:
                where.append(f"{value} ({key})")
        line = f"{role.name}: {role.summary}"
        lines.append(f"{line}, on {' and '.join(where)}" if where else line)
    return lines


def command_modules() -> list[Any]:
    """The modules that add verbs to `gateway`, imported."""
    return [importlib.import_module(path) for path in COMMANDS]


def _load(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
