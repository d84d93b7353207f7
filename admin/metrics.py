"""GET /metrics: the gateway's state in the Prometheus text format.

Read from the database at each scrape (prometheus_client's custom collector), so
every process of a node, and every node sharing a PostgreSQL database, shows
the same figures. Mailboxes are labelled by their email address: these are the
operator's own users, and the address is what `gateway mailbox status|audit`
take. Set [web] metrics_token to require a bearer token.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from gateway.config import Config
from gateway.db import Database
from gateway.errors import NotSignedIn
from gateway.models import Mailbox, MailboxFolder, MailboxState, Sighting, SightingState

router = APIRouter()
# Sighting states worth a gauge; "done" and "discarded" only grow, and counting them
# would read the whole table at every scrape.
OPEN_STATES = (SightingState.PENDING, SightingState.FAILED, SightingState.QUARANTINED)


class GatewayCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        """Read at each scrape: one read transaction for every family."""
        with self.db.read() as session:
            mailboxes = session.execute(
                select(Mailbox.id, Mailbox.email, Mailbox.state, Mailbox.last_sync_at)
            ).all()
            folders = session.execute(
                select(
                    MailboxFolder.mailbox_id,
                    MailboxFolder.role,
                    MailboxFolder.total,
                    MailboxFolder.scanned,
                    MailboxFolder.matched,
                    MailboxFolder.fetched,
                    MailboxFolder.missing,
                    MailboxFolder.audited_at,
                    MailboxFolder.initial_done,
                )
            ).all()
            sightings = dict(
                session.execute(
                    select(Sighting.state, func.count())
                    .where(Sighting.state.in_([s.value for s in OPEN_STATES]))
                    .group_by(Sighting.state)
                ).all()
            )
        yield from _mailbox_families(mailboxes)
        yield from _folder_families(folders, {m.id: m.email for m in mailboxes})
        yield _waiting_family(sightings)


def _mailbox_families(mailboxes: Sequence[Any]) -> Iterator[Metric]:
    """Mailboxes by state; each mailbox's state and last sync."""
    states = GaugeMetricFamily(
        "gateway_mailboxes", "Connected mailboxes by state.", labels=["state"]
    )
    for state in MailboxState:
        states.add_metric([state.value], sum(1 for m in mailboxes if m.state == state.value))
    info = GaugeMetricFamily(
        "gateway_mailbox_state",
        "1 for the state each mailbox is in (reconnect_required: a person must act).",
        labels=["mailbox", "state"],
    )
    last_sync = GaugeMetricFamily(
        "gateway_mailbox_last_sync_timestamp_seconds",
        "When each mailbox's last sync pass ended (Unix time).",
        labels=["mailbox"],
    )
    for m in mailboxes:
        info.add_metric([m.email, m.state], 1)
        if m.last_sync_at is not None:
            last_sync.add_metric([m.email], _unix(m.last_sync_at))
    yield from (states, info, last_sync)


_PER_FOLDER = {  # column -> (metric name, help)
    "missing": (
        "gateway_mailbox_missing_messages",
        "Messages the last completeness audit found on the server, within the "
        "window and involving a contact, that the gateway had not stored.",
    ),
    "total": (
        "gateway_mailbox_window_messages",
        "Messages within the sync window when the initial sync began.",
    ),
    "scanned": ("gateway_mailbox_scanned_messages", "Messages whose headers the sync has read."),
    "matched": ("gateway_mailbox_matched_messages", "Scanned messages that named a contact."),
    "fetched": ("gateway_mailbox_fetched_messages", "Messages downloaded in full."),
}


def _folder_families(folders: Sequence[Any], emails: dict[int, str]) -> Iterator[Metric]:
    """Per mailbox and folder: the sync's progress, the audit's missing count and time."""
    labels = ["mailbox", "folder"]
    per_folder = {
        key: GaugeMetricFamily(name, text, labels=labels)
        for key, (name, text) in _PER_FOLDER.items()
    }
    initial = GaugeMetricFamily(
        "gateway_mailbox_initial_sync_done",
        "1 once the folder's initial sync has finished.",
        labels=labels,
    )
    audited = GaugeMetricFamily(
        "gateway_mailbox_audit_timestamp_seconds",
        "When the folder was last audited (Unix time).",
        labels=labels,
    )
    for f in folders:
        which = [emails.get(f.mailbox_id, str(f.mailbox_id)), f.role]
        for key, family in per_folder.items():
            family.add_metric(which, getattr(f, key))
        initial.add_metric(which, 1 if f.initial_done else 0)
        if f.audited_at is not None:
            audited.add_metric(which, _unix(f.audited_at))
    yield from per_folder.values()
    yield from (initial, audited)


def _waiting_family(sightings: dict[str, int]) -> Metric:
    waiting = GaugeMetricFamily(
        "gateway_messages_waiting",
        "Arrivals not finished: pending (the pipeline has yet to attach them), failed "
        "(after retries) and quarantined (sender not verified, awaiting approval).",
        labels=["state"],
    )
    for state in OPEN_STATES:
        waiting.add_metric([state.value], sightings.get(state.value, 0))
    return waiting


def _unix(moment: datetime) -> float:
    return moment.timestamp()


def registry(db: Database) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    found.register(GatewayCollector(db))
    return found


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    config: Config = request.app.state.config
    token = config.web.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            raise NotSignedIn("GET /metrics needs the bearer token of [web] metrics_token")
    body = generate_latest(request.app.state.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
