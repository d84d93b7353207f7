"""/api/v1/contacts over real HTTP on loopback: create, read, change, delete, find by
address, pages with signed cursors, bulk import all or none; scopes; and no way to
read or change another account's contacts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.accounts import add_user, create_account
from gateway.config import Config
from gateway.db import Database
from gateway.tokens import create_account_token, create_token
from gateway.vault import ensure_key_file
from tests.helpers.web import ApiClient, running_web

Api = ApiClient


@pytest.fixture
def api(db: Database, config: Config, account_id: int) -> Iterator[Api]:
    ensure_key_file(config.secret_key_file)
    with db.session() as session:
        other = create_account(session, "other")
        add_user(session, config, other, "olga@other.test", "Olga")
        tokens = {
            "rw": create_account_token(session, account_id, ["read", "write"]).token,
            "read": create_account_token(session, account_id, ["read"]).token,
            "send": create_account_token(session, account_id, ["send"]).token,
            "member": create_token(session, config, "bob@acme.com").token,
            "other": create_account_token(session, other.id, ["read", "write"]).token,
        }
    with running_web(db, config) as url:
        yield Api(url, tokens)


def test_a_contact_is_created_read_changed_found_and_deleted(api: Api) -> None:
    made = api.call(
        "POST", "/contacts", "rw", json={"name": "Carol", "emails": ["Carol@Client.com"]}
    )
    assert made.status_code == 201, made.text
    contact = made.json()
    assert contact["name"] == "Carol" and contact["emails"] == ["Carol@Client.com"]
    path = f"/contacts/{contact['id']}"
    assert api.call("GET", path, "read").json() == contact
    found = api.call("GET", "/contacts", "read", params={"address": "carol@CLIENT.com"}).json()
    assert [c["id"] for c in found["data"]] == [contact["id"]] and found["next_cursor"] is None
    changed = api.call("PATCH", path, "rw", json={"emails": ["carol@client.com", "c2@client.com"]})
    assert changed.status_code == 200 and changed.json()["emails"] == [
        "Carol@Client.com",  # as first written: the same address
        "c2@client.com",
    ]
    assert api.call("PATCH", path, "rw", json={"name": "Carol C."}).json()["name"] == "Carol C."
    assert api.call("DELETE", path, "rw").status_code == 204
    gone = api.call("GET", path, "read")
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"


def test_an_address_of_another_contact_or_of_a_user_is_refused(api: Api) -> None:
    api.call("POST", "/contacts", "rw", json={"emails": ["carol@client.com"]})
    taken = api.call("POST", "/contacts", "rw", json={"emails": ["CAROL@client.com"]})
    assert taken.status_code == 409 and "already belongs to contact" in taken.json()["detail"]
    user = api.call("POST", "/contacts", "rw", json={"emails": ["bob@acme.com"]})
    assert user.status_code == 422
    assert user.json()["errors"][0]["field"] == "bob@acme.com"
    empty = api.call("POST", "/contacts", "rw", json={"emails": []})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "emails"


def test_pages_follow_signed_cursors_and_refuse_forged_or_foreign_ones(api: Api) -> None:
    rows = [{"emails": [f"p{i}@client.com"]} for i in range(7)]
    assert api.call("POST", "/contacts/import", "rw", json={"contacts": rows}).status_code == 200
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        got = api.call("GET", "/contacts", "read", params=params).json()
        seen += [c["id"] for c in got["data"]]
        cursor = got["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and seen == sorted(seen)
    first = api.call("GET", "/contacts", "read", params={"limit": 3}).json()["next_cursor"]
    body = first.split(".")[0]
    forged = api.call("GET", "/contacts", "read", params={"limit": 3, "cursor": body + ".AAAA"})
    assert forged.status_code == 400 and forged.json()["errors"][0]["field"] == "cursor"
    other_query = {"limit": 3, "cursor": first, "address": "p1@client.com"}
    assert api.call("GET", "/contacts", "read", params=other_query).status_code == 400
    assert api.call("GET", "/contacts", "read", params={"cursor": "garbage"}).status_code == 400
    assert api.call("GET", "/contacts", "read", params={"limit": 201}).status_code == 422


def test_bulk_import_is_all_or_none_with_every_bad_row_named(api: Api) -> None:
    rows = [
        {"name": "Good", "emails": ["good@client.com"]},
        {"name": "Bad", "emails": ["not-an-address"]},
        {"name": "Twice", "emails": ["good@client.com"]},
        {"name": "User", "emails": ["ann@acme.com"]},
    ]
    refused = api.call("POST", "/contacts/import", "rw", json={"contacts": rows})
    assert refused.status_code == 422, refused.text
    assert [e["row"] for e in refused.json()["errors"]] == [2, 3, 4]
    assert "is also on row 1" in refused.json()["errors"][1]["message"]
    assert api.call("GET", "/contacts", "read").json()["data"] == []  # nothing imported
    done = api.call("POST", "/contacts/import", "rw", json={"contacts": rows[:1]})
    assert done.json() == {"created": 1, "updated": 0, "unchanged": 0}
    again = [{"name": "Good Person", "emails": ["good@client.com", "g2@client.com"]}]
    assert api.call("POST", "/contacts/import", "rw", json={"contacts": again}).json() == {
        "created": 0,
        "updated": 1,
        "unchanged": 0,
    }
    too_many = [{"emails": [f"x{i}@client.com"]} for i in range(10_001)]
    assert (
        api.call("POST", "/contacts/import", "rw", json={"contacts": too_many}).status_code == 422
    )


def test_scopes_and_members(api: Api) -> None:
    assert api.call("GET", "/contacts", None).status_code == 401
    read_only = api.call("POST", "/contacts", "read", json={"emails": ["x@client.com"]})
    assert read_only.status_code == 403 and "scope write" in read_only.json()["detail"]
    assert api.call("GET", "/contacts", "send").status_code == 403
    member = api.call("GET", "/contacts", "member")
    assert member.status_code == 403  # a user's token sends; it reads no contacts


def test_another_accounts_contacts_cannot_be_read_or_changed(api: Api) -> None:
    mine = api.call("POST", "/contacts", "rw", json={"emails": ["carol@client.com"]}).json()
    path = f"/contacts/{mine['id']}"
    assert api.call("GET", path, "other").status_code == 404
    assert api.call("PATCH", path, "other", json={"name": "stolen"}).status_code == 404
    assert api.call("DELETE", path, "other").status_code == 404
    assert api.call("GET", "/contacts", "other").json()["data"] == []
    found = api.call("GET", "/contacts", "other", params={"address": "carol@client.com"})
    assert found.json()["data"] == []
    # The same address is free in the other account: accounts never share contacts.
    theirs = api.call("POST", "/contacts", "other", json={"emails": ["carol@client.com"]})
    assert theirs.status_code == 201
    assert api.call("GET", path, "read").json()["name"] == ""  # untouched
