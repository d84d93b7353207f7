"""Periodic jobs shared by the nodes: each runs on one node per period.

A job is a lease (gateway.leases, kind "job", key its name) whose due time is the
next run. Every node running the role that owns the job looks now and then; the
one that claims the lease runs the job, and finishing moves the due time one
period on. A node that dies in the middle loses the lease when it runs out, and
the job, still due, runs again on whichever node claims it next. The job's writes
are fenced by the lease, each moving it on: a job longer than the lease keeps it
while it makes progress, and a node that lost it writes nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from gateway import leases
from gateway.config import Config
from gateway.db import Database
from gateway.errors import ROUND_FAILURES
from gateway.leases import Fence, LeaseLost
from gateway.models import utcnow

log = logging.getLogger(__name__)
KIND = "job"
RETRY = 60.0  # seconds before a job that failed (the database away) is due again


@dataclass(frozen=True)
class Job:
    name: str
    period: Callable[[Config], float]  # seconds between runs
    work: Callable[[Database, Config, Fence], int]  # how many things it did


def run_due(db: Database, config: Config, holder: str, jobs: Sequence[Job]) -> dict[str, int]:
    """Run each of `jobs` that is due and not another node's now: name -> its count."""
    done: dict[str, int] = {}
    lease = config.cluster.lease
    for job in jobs:
        held = leases.claim_due(db, KIND, holder, [job.name], 1, lease)
        if job.name not in held:
            continue
        generation = held[job.name]
        fence = leases.fencing(KIND, job.name, holder, generation, extend=lease)
        next_in = job.period(config)
        try:
            done[job.name] = job.work(db, config, fence)
        except LeaseLost:
            log.warning("%s: another node runs it now", job.name)
            continue
        except ROUND_FAILURES as exc:  # the database away for a moment: again soon
            log.warning("%s stopped: %s", job.name, exc)
            next_in = min(next_in, RETRY)
        due = utcnow() + timedelta(seconds=next_in)
        leases.finish(db, KIND, holder, job.name, generation, due)
    return done
