"""Import mail a user pushes on purpose (`gateway ingest`): store, then run the pipeline.

Pushed mail is kept even when it involves no contact (it attaches later),
except a malformed file, which is reported with its path and kept only when
one of its addresses matches a contact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.config import Config
from gateway.db import Database
from gateway.models import Keep, Source
from gateway.parsing import parse
from gateway.pipeline import Outcome, Pipeline
from gateway.store import Arrival, accept_in

BATCH_MESSAGES = 100
BATCH_BYTES = 20 * 1024 * 1024


@dataclass
class IngestReport:
    new_messages: int = 0
    attached: int = 0
    unattached: int = 0
    already_known: int = 0
    discarded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    malformed: list[tuple[str, str]] = field(default_factory=list)


def ingest(
    db: Database,
    config: Config,
    user_id: int,
    items: Iterable[tuple[str, bytes]],
    progress: Callable[[int], None] = lambda n: None,
) -> IngestReport:
    report = IngestReport()
    pipeline = Pipeline(db, config)
    batch: list[tuple[str, bytes, Keep]] = []
    size = 0
    for label, raw in items:
        if not raw.strip():
            report.malformed.append((label, "empty file"))
            progress(1)
            continue
        parsed = parse(raw, config.addresses.local_part_case)
        keep = Keep.ALWAYS
        if parsed.malformed:
            keep = Keep.IF_MATCHED
            report.malformed.append((label, ", ".join(parsed.flags)))
        batch.append((label, raw, keep))
        size += len(raw)
        if len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES:
            _flush(db, pipeline, user_id, batch, report)
            progress(len(batch))
            batch, size = [], 0
    if batch:
        _flush(db, pipeline, user_id, batch, report)
        progress(len(batch))
    return report


def _flush(
    db: Database,
    pipeline: Pipeline,
    user_id: int,
    batch: list[tuple[str, bytes, Keep]],
    report: IngestReport,
) -> None:
    with db.session() as session:
        accepted = [
            (label, accept_in(session, raw, Arrival(user_id, Source.IMPORT, keep)))
            for label, raw, keep in batch
        ]
    fresh = {a.sighting_id: label for label, a in accepted if a.new}
    report.already_known += len(accepted) - len(fresh)
    for outcome in pipeline.process(list(fresh)):
        _count(report, fresh[outcome.sighting_id], outcome)


def _count(report: IngestReport, label: str, outcome: Outcome) -> None:
    if outcome.error is not None:
        report.failed.append((label, outcome.error))
    elif outcome.state == "discarded":
        report.discarded += 1
    elif not outcome.created:
        report.already_known += 1
    elif outcome.contact_ids:
        report.new_messages += 1
        report.attached += 1
    else:
        report.new_messages += 1
        report.unattached += 1
