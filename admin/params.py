"""Parameters every route shares: ids are 64-bit (what the database can hold), so a
larger number is a 422, never a 500 from the database driver."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_ID = 2**63 - 1
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
AfterId = Annotated[int, Query(ge=0, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=200)]
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]  # a filter by id
