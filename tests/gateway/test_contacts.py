"""Contacts: CSV import is all or nothing and names every bad row; export is safe."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.contact_import import export_csv, import_csv
from gateway.contacts import add_contact, list_contacts
from gateway.directory import AccountDirectory
from gateway.errors import Conflict, CsvImportError, InputError
from gateway.models import Account, Contact, ContactEmail, Event
from tests.helpers.mail import make_message
from tests.helpers.pipeline import count, push


def do_import(db, config, account_id, path: Path):
    with db.session() as session:
        directory = AccountDirectory.load(session, session.get_one(Account, account_id), config)
        return import_csv(session, directory, path, "lower")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_creates_contacts_and_attaches_their_mail(db, config, account_id, tmp_path):
    message = push(db, config, make_message(from_="carol@client.com"))
    path = write(
        tmp_path,
        "Name,Email,Other_Emails,Phone\r\n"
        "Carol,carol@client.com,carol@home.net;c@client.com,123\r\n"
        '"Dan, Jr.",dan@client.com,,\r\n',
    )
    result = do_import(db, config, account_id, path)
    assert (result.created, result.updated, result.ignored_columns) == (2, 0, ["phone"])
    assert count(db, ContactEmail) == 4
    from tests.helpers.pipeline import attached

    assert len(attached(db, message.message_id or 0)) == 1


def test_bad_rows_are_all_named_and_nothing_is_imported(db, config, account_id, tmp_path):
    path = write(
        tmp_path,
        "email,name\n"
        "good@client.com,Good\n"  # line 2
        "not-an-address,Bad\n"  # line 3
        "good@client.com,Twice\n"  # line 4
        "bob@acme.com,A user\n"  # line 5
        ",No email\n"  # line 6
        "\n"  # blank: skipped
        "x@client.com,Too,many\n"  # line 8
        f"y@{config.dropbox.domain},Dropbox\n",  # line 9
    )
    with pytest.raises(CsvImportError) as caught:
        do_import(db, config, account_id, path)
    assert [line for line, _ in caught.value.rows] == [3, 4, 5, 6, 8, 9]
    text = str(caught.value)
    assert f"{path}:3: not-an-address: not a valid email address" in text
    assert "good@client.com is also on line 2" in text
    assert count(db, Contact) == 0


def test_clash_with_stored_contacts_rolls_back_everything(db, config, account_id, tmp_path):
    with db.session() as session:
        directory = AccountDirectory.load(session, session.get_one(Account, account_id), config)
        add_contact(session, directory, ["a@client.com"], "A", "lower")
        add_contact(session, directory, ["b@client.com"], "B", "lower")
    path = write(tmp_path, "email,other_emails\nnew@client.com,\na@client.com,b@client.com\n")
    with pytest.raises(CsvImportError) as caught:
        do_import(db, config, account_id, path)
    assert caught.value.rows[0][0] == 3
    assert count(db, Contact) == 2  # new@client.com was rolled back


def test_reimport_updates_instead_of_duplicating(db, config, account_id, tmp_path):
    do_import(db, config, account_id, write(tmp_path, "email,name\na@client.com,A\n"))
    result = do_import(
        db,
        config,
        account_id,
        write(tmp_path, "email,name,other_emails\na@client.com,Anna,a2@c.com\n"),
    )
    assert (result.created, result.updated) == (0, 1)
    assert count(db, Contact) == 1 and count(db, ContactEmail) == 2


def test_missing_email_column_and_unreadable_file(db, config, account_id, tmp_path):
    with pytest.raises(InputError, match='"email" column'):
        do_import(db, config, account_id, write(tmp_path, "name\nX\n"))
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"email\nj\xf6rg@x.com\n")
    with pytest.raises(InputError, match="cannot read"):
        do_import(db, config, account_id, bad)


def test_export_neutralizes_formulas_and_round_trips(db, config, account_id, tmp_path):
    with db.session() as session:
        directory = AccountDirectory.load(session, session.get_one(Account, account_id), config)
        add_contact(session, directory, ["x@client.com", "y@client.com"], "=HYPERLINK(1)", "lower")
        add_contact(session, directory, ["+plus@client.com"], "@home", "lower")
        out = io.StringIO()
        export_csv(session, account_id, out)
    text = out.getvalue()
    assert "'=HYPERLINK(1)" in text and "'+plus@client.com" in text and "'@home" in text
    # Import into a fresh account reproduces the same contacts.
    with db.session() as session:
        other = Account(name="other", plan="free", auto_create_contacts=False, blocked_domains=[])
        session.add(other)
        session.flush()
        other_id = other.id
    do_import(db, config, other_id, write(tmp_path, text))
    with db.session() as session:
        names = sorted(c.name for c in list_contacts(session, other_id))
        emails = sorted(e.display for c in list_contacts(session, other_id) for e in c.emails)
    assert names == ["=HYPERLINK(1)", "@home"]
    assert emails == ["+plus@client.com", "x@client.com", "y@client.com"]


def test_add_refuses_users_duplicates_and_garbage(db, config, account_id):
    with db.session() as session:
        directory = AccountDirectory.load(session, session.get_one(Account, account_id), config)
        add_contact(session, directory, ["c@client.com"], "", "lower")
        with pytest.raises(InputError, match="user of this account"):
            add_contact(session, directory, ["BOB@acme.com"], "", "lower")
        with pytest.raises(Conflict):
            add_contact(session, directory, ["C@Client.com"], "", "lower")
        for bad in ["x", "a@b.com, c@d.com", "a@b.com\r\nBcc: e@f.com"]:
            with pytest.raises(InputError):
                add_contact(session, directory, [bad], "", "lower")
    assert count(db, Event) == 1  # contact.created, once


@pytest.mark.parametrize("asked", [0, 1, 3, 17, 500, 501, 1203])
def test_matching_finds_exactly_the_contacts_among_any_number_of_addresses(
    db, config, account_id, asked
):
    """Lookups are padded to a few prepared sizes and chunked at 500: whatever the
    number of addresses, the answer is exactly the contacts among them."""
    from gateway.matching import match_contacts

    with db.session() as session:
        directory = AccountDirectory.load(session, session.get_one(Account, account_id), config)
        ids = {
            f"c{i}@client.com": add_contact(
                session, directory, [f"c{i}@client.com"], f"C {i}", "lower"
            )
            for i in range(0, 1300, 7)
        }
    addresses = [f"c{i}@client.com" for i in range(asked)] + ["c0@client.com"] * (asked > 0)
    with db.session() as session:
        found = match_contacts(session, account_id, addresses)
    assert found == {a: ids[a].id for a in set(addresses) if a in ids}
