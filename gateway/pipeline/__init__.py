"""The message pipeline: a pending Sighting becomes a Message on the right contacts.

    Sighting(pending) --parse--> ParsedMessage --identity--> known? --yes--> sighting done
                                                               |no
           match contacts (users and dropbox addresses never) -+- auto-create (if enabled)
                                                               |
             nothing matched and scanned (keep=if_matched)? --yes--> discarded, raw deleted
                                                               |no
         thread --> Message + addresses --> attach --> event --> meetings --> sighting done

A batch of sightings is finished in one transaction, so every step is redone
from database state after a crash: a sighting is either still pending (and
done again from the start) or done, never half done. If one message of a
batch fails, the batch is redone one message per savepoint, and the failing
one is retried on later runs until MAX_ATTEMPTS park it as failed. Workers
claim sightings with FOR UPDATE SKIP LOCKED on PostgreSQL.

    work        the pending sightings: claimed with their bytes, discarded
    runner      Pipeline: batches, savepoints, attempts; a known message is sighted
    creation    a new Message: match, thread, insert, addresses, attach, event
    autocreate  which new addresses become contacts, and creating them
    invitations the meeting invitations a message carries, applied to the meetings
    writes      rows written together just before the batch commits
    statements  the hot path's statements, built once
"""

from __future__ import annotations

from gateway.pipeline.runner import MAX_ATTEMPTS, Pipeline
from gateway.pipeline.work import Outcome, Work

__all__ = ["MAX_ATTEMPTS", "Outcome", "Pipeline", "Work"]
