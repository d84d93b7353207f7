"""Core statements compiled once and run straight on the DB-API cursor.

For the few statements that run for every message acknowledged: SQLAlchemy
still writes the SQL and converts the values (its compiler and the column
types' bind processors); what is skipped is the per-call execution machinery,
which costs several times the work SQLite itself does for a small insert.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


class Prepared:
    def __init__(
        self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> None:
        self.statement = statement
        self.compiled = statement.compile(
            dialect=dialect, column_keys=list(column_keys) if column_keys else None
        )
        self.sql = self.compiled.string
        self.order: list[str] | None = self.compiled.positiontup  # type: ignore[attr-defined]
        processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in self.compiled.binds.items():  # type: ignore[attr-defined]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        self.processors = processors
        self.binds = frozenset(self.compiled.binds)  # type: ignore[attr-defined]

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> Any:
        """Run with `values` (the statement's own values fill the rest); the DB-API cursor."""
        params = self.compiled.construct_params(dict(values))
        assert params is not None
        for name, processor in self.processors.items():
            if name in params:
                params[name] = processor(params[name])
        cursor = connection.connection.cursor()
        dbapi_error = connection.dialect.loaded_dbapi.Error
        try:
            if self.order is not None:
                cursor.execute(self.sql, [params[name] for name in self.order])
            else:
                cursor.execute(self.sql, params)
        except dbapi_error as exc:
            # As SQLAlchemy would raise it: IntegrityError, OperationalError, ...
            raise DBAPIError.instance(self.sql, params, exc, dbapi_error) from exc
        return cursor

    def execute_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row (DB-API executemany); every row gives every bound value."""
        names = self.order if self.order is not None else sorted(self.binds)
        processors = [self.processors.get(name) for name in names]
        try:
            values = [
                [
                    row[name] if processor is None else processor(row[name])
                    for name, processor in zip(names, processors, strict=True)
                ]
                for row in rows
            ]
        except KeyError as exc:
            raise ValueError(f"execute_many: every row must give {exc}") from None
        params: list[Any] = (
            values if self.order is not None else [dict(zip(names, v, strict=True)) for v in values]
        )
        cursor = connection.connection.cursor()
        dbapi_error = connection.dialect.loaded_dbapi.Error
        try:
            cursor.executemany(self.sql, params)
        except dbapi_error as exc:
            raise DBAPIError.instance(self.sql, params, exc, dbapi_error) from exc


IN_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 500)
"""List lengths an `IN (...)` statement is prepared for; longer lists go in chunks."""


def padded_in(values: Sequence[Any], prefix: str) -> tuple[int, dict[str, Any]]:
    """(size, binds): `values` (1 to IN_SIZES[-1] of them) bound as prefix0, prefix1, ...,
    padded to the next prepared size by repeating the last, which IN ignores."""
    size = next(s for s in IN_SIZES if s >= len(values))
    last = len(values) - 1
    return size, {f"{prefix}{i}": values[min(i, last)] for i in range(size)}


def prepared(
    key: str, build: Callable[[], ClauseElement], column_keys: Sequence[str] | None = None
) -> Callable[[Connection], Prepared]:
    """A per-dialect cache: `prepared(...)(connection)` is the statement for its engine."""

    @functools.cache
    def for_dialect(name: str, dialect: Dialect) -> Prepared:
        return Prepared(build(), dialect, column_keys)

    def get(connection: Connection) -> Prepared:
        return for_dialect(connection.dialect.name, connection.dialect)

    get.__name__ = key
    return get
