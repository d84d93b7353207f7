"""A full disk or database: 452 4.3.1, never 250 for a message not stored, and
recovery without a restart when space returns."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import event

from gateway import smtp_replies as replies
from gateway.models import RawMessage
from tests.helpers.database import PG_URL
from tests.helpers.dropbox import Dropbox
from tests.helpers.mail import make_message
from tests.helpers.pipeline import count


@pytest.mark.skipif(bool(PG_URL), reason="a full disk is simulated with SQLite's max_page_count")
def test_full_storage_is_452_and_recovers(dropbox: Dropbox, db) -> None:
    limit = {"pages": 0}

    def cap(dbapi_connection, _record) -> None:
        if limit["pages"]:
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    with db.engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
    event.listen(db.engine, "connect", cap)
    limit["pages"] = int(pages or 0) + 5  # room for a few small rows, not for 150 KB
    db.engine.dispose()
    raw = make_message(from_="bob@acme.com", body=("z" * 900 + "\r\n") * 160)
    rcpt = dropbox.address("bob@acme.com")
    for _ in range(3):
        with dropbox.client() as client, pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("bob@acme.com", [rcpt], raw)
        assert (caught.value.smtp_code, caught.value.smtp_error) == (
            replies.STORAGE_FULL.code,
            f"{replies.STORAGE_FULL.status} {replies.STORAGE_FULL.text}".encode(),
        )
    assert count(db, RawMessage) == 0
    limit["pages"] = 0  # space returns
    db.engine.dispose()
    with dropbox.client() as client:
        assert client.sendmail("bob@acme.com", [rcpt], raw) == {}
    assert count(db, RawMessage) == 1
