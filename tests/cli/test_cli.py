"""The `gateway` command as a user runs it: init, users, contacts, ingest, messages."""

from __future__ import annotations

import mailbox
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from gateway.cli import main
from gateway.config import render_example
from gateway.db import Database
from gateway.models import User
from tests.helpers.cli import Run
from tests.helpers.mail import make_message


def test_init_from_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    assert main(["init", "--admin-email", "root@acme.com"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "config.toml").read_text() == render_example()
    key = tmp_path / "var" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    tls_key = tmp_path / "var" / "tls" / "key.pem"
    assert stat.S_IMODE(tls_key.stat().st_mode) == 0o600
    assert (tmp_path / "var" / "tls" / "cert.pem").read_bytes().startswith(b"-----BEGIN CERT")
    password = out.split("one-time password (change it at first sign-in): ")[1].split()[0]
    db = Database(f"sqlite:///{tmp_path / 'var' / 'gateway.db'}")
    with db.session() as session:
        admin = session.query(User).one()
        assert admin.email == "root@acme.com" and admin.is_admin and admin.password_must_change
        assert admin.password_hash is not None
        assert PasswordHasher().verify(admin.password_hash, password)
        assert password not in admin.password_hash
    db.dispose()
    assert main(["init"]) == 0
    assert "already initialized" in capsys.readouterr().out


def test_users(initialized: Run) -> None:
    shown = initialized("user", "show", "BOB@acme.com", "--json").json()
    assert shown["addresses"] == ["bob@acme.com", "bob@acme.org"]
    local, domain = shown["dropbox_address"].split("@")
    assert domain == "dropbox.localhost" and len(local) >= 16  # >= 80 bits of base32
    listed = initialized("user", "list", "--json").json()
    assert [u["email"] for u in listed] == ["admin@localhost", "bob@acme.com"]
    added = initialized("user", "add", "ann@acme.com", "--admin")
    assert "dropbox address: " in added.out and "one-time password" in added.out
    again = initialized("user", "add", "Bob@Acme.com")
    assert again.code == 1 and "already exists" in again.err
    alias_taken = initialized("user", "add", "zed@acme.com", "--alias", "bob@acme.org")
    assert alias_taken.code == 1 and "another user" in alias_taken.err
    bad = initialized("user", "add", "not an address")
    assert bad.code == 1 and "not a valid email address" in bad.err
    missing = initialized("user", "show", "nobody@acme.com")
    assert missing.code == 1 and "no user" in missing.err
    rotated = initialized("user", "rotate-dropbox", "bob@acme.com")
    new = rotated.out.split("new dropbox address: ")[1].split()[0]
    assert new != shown["dropbox_address"]
    assert initialized("user", "show", "bob@acme.com", "--json").json()["dropbox_address"] == new


def test_contacts_commands(initialized: Run, tmp_path: Path) -> None:
    assert (
        initialized("contacts", "add", "carol@client.com", "c@client.org", "--name", "Carol").code
        == 0
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name\nok@client.com,Ok\nnope,Nope\nbob@acme.com,Bob\n")
    result = initialized("contacts", "import", str(bad))
    assert result.code == 1
    assert f"{bad}:3: nope: not a valid email address" in result.err
    assert f"{bad}:4: bob@acme.com: is an address of a user" in result.err
    assert len(initialized("contacts", "list", "--json").json()) == 1
    good = tmp_path / "good.csv"
    good.write_text("email,name\nok@client.com,Ok\n")
    assert "1 created" in initialized("contacts", "import", str(good)).out
    exported = tmp_path / "out.csv"
    assert initialized("contacts", "export", "-o", str(exported)).code == 0
    assert "carol@client.com" in exported.read_text() and "ok@client.com" in exported.read_text()
    assert initialized("contacts", "remove", "OK@client.com").code == 0
    assert [c["emails"] for c in initialized("contacts", "list", "--json").json()] == [
        ["carol@client.com", "c@client.org"]
    ]
    assert initialized("contacts", "remove", "ok@client.com").code == 1


def test_ingest_eml_mbox_maildir_and_list(initialized: Run, tmp_path: Path) -> None:
    initialized("contacts", "add", "carol@client.com")
    eml = tmp_path / "one.eml"
    eml.write_bytes(make_message(message_id="<e1@x>"))
    box = mailbox.mbox(str(tmp_path / "box.mbox"))
    for i in range(3):
        box.add(make_message(message_id=f"<mb{i}@x>", from_=f"p{i}@prospect.com"))
    box.flush()
    box.close()
    folder = mailbox.Maildir(str(tmp_path / "Maildir"))
    folder.add(make_message(message_id="<md1@x>", subject="From maildir"))
    folder.add(make_message(message_id="<e1@x>"))  # the same message as the .eml
    first = initialized("ingest", str(eml), "--user", "bob@acme.com")
    assert first.code == 0 and "1 new (1 on contacts" in first.out
    second = initialized("ingest", str(tmp_path / "box.mbox"), "--user", "bob@acme.com")
    assert "3 new (0 on contacts, 3 unattached)" in second.out
    third = initialized("ingest", str(tmp_path / "Maildir"), "--user", "bob@acme.com", "--json")
    report = third.json()
    assert report["new_messages"] == 1 and report["already_known"] == 1
    listed = initialized("messages", "list", "--json").json()
    assert len(listed) == 5
    on_carol = initialized("messages", "list", "--contact", "carol@client.com", "--json").json()
    assert sorted(m["message_id"] for m in on_carol) == ["e1@x", "md1@x"]
    # A contact created later picks up the unattached mail by itself.
    initialized("contacts", "add", "p1@prospect.com")
    on_p1 = initialized("messages", "list", "--contact", "p1@prospect.com", "--json").json()
    assert [m["message_id"] for m in on_p1] == ["mb1@x"]
    unattached = initialized("messages", "list", "--unattached", "--json").json()
    assert len(unattached) == 2
    table = initialized("messages", "list").out
    assert "From maildir" in table


def test_malformed_eml_reported_and_kept_only_if_it_matches(initialized: Run, tmp_path) -> None:
    initialized("contacts", "add", "carol@client.com")
    garbage = tmp_path / "garbage.eml"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    two_from = tmp_path / "two-from.eml"
    two_from.write_bytes(make_message(from_=["carol@client.com", "eve@evil.com"]))
    result = initialized("ingest", str(garbage), "--user", "bob@acme.com")
    assert f"{garbage}: malformed" in result.err and "not kept" in result.out
    result = initialized("ingest", str(two_from), "--user", "bob@acme.com")
    assert f"{two_from}: malformed: multiple_from" in result.err
    [message] = initialized("messages", "list", "--json").json()
    assert message["from_display"].startswith("MALFORMED (2 From headers)")
    assert "MALFORMED" in initialized("messages", "list").out


def test_ingest_errors_are_clear(initialized: Run, tmp_path: Path) -> None:
    missing = initialized("ingest", str(tmp_path / "nope.eml"), "--user", "bob@acme.com")
    assert missing.code == 1 and "no such file" in missing.err
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    assert "not a Maildir" in initialized("ingest", str(empty_dir), "--user", "bob@acme.com").err
    nobody = initialized("ingest", str(tmp_path), "--user", "nobody@x.com")
    assert nobody.code == 1


def test_account_settings(initialized: Run) -> None:
    initialized("account", "set", "--auto-create-contacts", "on", "--block-domain", "Spam.COM")
    shown = initialized("account", "show", "--json").json()
    assert shown["auto_create_contacts"] is True and shown["blocked_domains"] == ["spam.com"]


def test_config_errors_exit_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[database]\nport = 5\n")
    assert main(["--config", str(path), "user", "list"]) == 2
    assert f"config error in {path}: database.port: unknown key" in capsys.readouterr().err


def test_help_works() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("init", "migrate", "serve", "user", "contacts", "ingest", "messages"):
        assert command in out


def test_a_cut_list_says_so_on_stderr_and_json_stays_a_list(
    initialized: Run, tmp_path: Path
) -> None:
    box = mailbox.mbox(str(tmp_path / "box.mbox"))
    for i in range(4):
        box.add(make_message(message_id=f"<cut{i}@x>", subject=f"cut {i}"))
    box.flush()
    box.close()
    initialized("ingest", str(tmp_path / "box.mbox"), "--user", "bob@acme.com")
    cut = initialized("messages", "list", "--limit", "3", "--json")
    assert len(cut.json()) == 3
    assert "showing the newest 3 messages; more match (--limit 12 shows more)" in cut.err
    whole = initialized("messages", "list", "--limit", "4", "--json")
    assert len(whole.json()) == 4 and whole.err == ""
    assert initialized("messages", "list", "--limit", "0").code == 1


@pytest.mark.parametrize("argv", [[], ["user"], ["queue"], ["mailbox"]])
def test_a_command_without_its_verb_prints_its_help(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    out = capsys.readouterr()
    assert out.out.startswith("usage: gateway") and "COMMAND" in out.out
    assert out.err == ""


def test_a_password_is_set_and_then_signs_in(
    initialized: Run, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from gateway.config import load_config
    from gateway.tokens import user_for_password

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    weak = initialized("user", "passwd", "bob@acme.com", "--password-stdin")
    assert weak.code == 1 and "at least 12 characters" in weak.err
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    done = initialized("user", "passwd", "bob@acme.com", "--password-stdin", "--must-change")
    assert done.code == 0, done.err
    config = load_config(config_file)
    db = Database(config.database_url)
    with db.session() as session:
        user = user_for_password(session, config, "bob@acme.com", "correct horse battery")
        assert user is not None and user.password_must_change
        assert user_for_password(session, config, "bob@acme.com", "wrong horse battery") is None
        stored = session.get_one(User, user.id).password_hash or ""
        assert stored.startswith("$argon2id$") and "correct horse" not in stored
    db.dispose()
