"""The Pipeline: finishes pending sightings in batches, one transaction each, a
batch that fails redone one sighting per savepoint; a sighting that keeps failing
is parked after MAX_ATTEMPTS. A message already known is only sighted again."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from sqlalchemy.orm import Session

from gateway import events
from gateway.config import Config
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.models import Sighting, SightingState
from gateway.parsing import ParsedMessage, parse, parse_origin
from gateway.pipeline.creation import new_message, roles_of
from gateway.pipeline.invitations import read_invites
from gateway.pipeline.lookups import BatchLookups, Wanted
from gateway.pipeline.statements import SEEN
from gateway.pipeline.work import Outcome, Work, claim, claim_after, still_pending
from gateway.pipeline.writes import Writes

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


class Pipeline:
    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config
        self.case = config.addresses.local_part_case
        self.writes = Writes()

    def run_pending(self, limit: int | None = None) -> list[Outcome]:
        """Finish pending sightings in batches until none is left (or `limit` done).

        Each sighting is tried at most once per call: one that fails stays
        pending for the next call, until MAX_ATTEMPTS park it as failed.
        """
        outcomes: list[Outcome] = []
        after = 0
        while limit is None or len(outcomes) < limit:
            size = self.config.pipeline.batch_size
            if limit is not None:
                size = min(size, limit - len(outcomes))
            # Read and parse outside the write transaction: on SQLite the write
            # lock is shared with the SMTP servers storing new mail.
            with self.db.read() as reading:
                candidates = claim_after(reading, after, size)
            candidates = [self._parsed_ahead(w) for w in candidates]
            if candidates:
                with self.db.session() as session:
                    outcomes += self._finish(session, still_pending(session, candidates))
            if len(candidates) < size:
                break  # none left when looked; later arrivals wake the worker again
            after = candidates[-1].sighting_id
        return outcomes

    def process(self, sighting_ids: Sequence[int]) -> list[Outcome]:
        """Finish the given sightings (those still pending) in one transaction."""
        with self.db.session() as session:
            return self._finish(session, claim(session, sighting_ids))

    def _finish(self, session: Session, works: Sequence[Work]) -> list[Outcome]:
        if not works:
            return []
        directories: dict[int, AccountDirectory] = {}
        for work in works:
            if work.account_id not in directories:
                directories[work.account_id] = AccountDirectory.load_by_id(
                    session, work.account_id, self.config
                )
        try:
            with session.begin_nested():
                lookups = self._lookups(session, works)
                done = [self._steps(session, w, directories[w.account_id], lookups) for w in works]
                self.writes.flush(session)
                return done
        except Exception as exc:
            self.writes.clear()
            if len(works) == 1:
                return [self._failed(session, works[0], exc)]
            log.warning("pipeline: a batch of %s failed; finishing one by one", len(works))
        outcomes = []
        for work in works:
            try:
                with session.begin_nested():
                    outcomes.append(self._steps(session, work, directories[work.account_id]))
                    self.writes.flush(session)
            except Exception as exc:
                self.writes.clear()
                outcomes.append(self._failed(session, work, exc))
        return outcomes

    def _failed(self, session: Session, work: Work, exc: Exception) -> Outcome:
        """Record a failed attempt (called inside the `except` block)."""
        log.exception("pipeline: sighting %s failed", work.sighting_id)
        sighting = session.get_one(Sighting, work.sighting_id)
        sighting.attempts += 1
        sighting.error = f"{type(exc).__name__}: {exc}"[:2000]
        if sighting.attempts >= MAX_ATTEMPTS:
            sighting.state = SightingState.FAILED.value
        return Outcome(work.sighting_id, sighting.state, error=sighting.error)

    def _parsed_ahead(self, work: Work) -> Work:
        """`work` with its message parsed; as it was if that fails (the failure then
        happens again inside _steps, where it counts as an attempt)."""
        if work.data is None:
            return work
        try:
            parsed = self._parse(work)
        except Exception:
            return work
        return dataclasses.replace(work, parsed=parsed, invites=read_invites(work.data))

    def _parse(self, work: Work) -> ParsedMessage:
        assert work.data is not None
        if work.origin:  # forwarded to the user's own dropbox: the original counts
            return parse_origin(work.origin, self.case)
        return parse(work.data, self.case)

    def _lookups(self, session: Session, works: Sequence[Work]) -> BatchLookups | None:
        """The batch's lookups in a few statements (gateway.pipeline.lookups), when
        every message of it was parsed ahead; else each looks its own up."""
        if len(works) < 2 or any(w.parsed is None for w in works):
            return None
        wanted = []
        for work in works:
            assert work.parsed is not None
            addresses = [a.normalized for _, a in roles_of(work.parsed)]
            wanted.append(
                Wanted(work.account_id, work.parsed.identity(), work.parsed.message_id, addresses)
            )
        return BatchLookups.load(session, wanted)

    def _steps(
        self,
        session: Session,
        work: Work,
        directory: AccountDirectory,
        lookups: BatchLookups | None = None,
    ) -> Outcome:
        if work.data is None:
            raise LookupError("raw bytes missing")
        parsed = work.parsed if work.parsed is not None else self._parse(work)
        identity = parsed.identity()
        if lookups is not None:
            seen = lookups.seen(work.account_id, identity, parsed.message_id)
        else:
            connection = session.connection()
            found = SEEN(connection).execute(
                connection,
                {
                    "account_id": work.account_id,
                    "identity": identity,
                    "message_id": parsed.message_id or "",
                },
            )
            seen = dict(found.fetchall())  # id -> identity (a row can match both ways)
        known = next((id_ for id_, ident in seen.items() if ident == identity), None)
        if known is not None:
            self.writes.done_with(work.sighting_id, known)
            self.writes.event(
                work.account_id,
                events.MESSAGE_SIGHTED,
                message_id=known,
                sighting_id=work.sighting_id,
                source=work.source,
            )
            return Outcome(work.sighting_id, SightingState.DONE.value, known)
        outcome = new_message(
            session, self.writes, self.config, work, parsed, identity, seen, directory, lookups
        )
        if lookups is not None and outcome.created and outcome.message_id is not None:
            lookups.stored(work.account_id, outcome.message_id, identity, parsed.message_id)
        return outcome
