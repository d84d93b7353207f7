"""`gateway serve` as a process: clean stops on signals, and no loss or duplicate
when it is killed with SIGKILL in the middle of finishing messages."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from sqlalchemy import func, select

from gateway.accounts import dropbox_address, get_user
from gateway.config import load_config
from gateway.db import Database
from gateway.models import Event, Keep, Message, MessageContact, Sighting, Source
from gateway.store import Arrival, MessageStore
from tests.helpers.cli import Run
from tests.helpers.mail import make_message
from tests.helpers.serve import dropbox_port, start


@pytest.mark.parametrize("workers", ["0", "2"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signals(
    initialized: Run, config_file: Path, sig: signal.Signals, workers: str
) -> None:
    proc = start(config_file, env={"GATEWAY_SERVE__WORKERS": workers})
    others = children_of(proc.pid)
    proc.send_signal(sig)
    assert proc.wait(timeout=40) == 0
    assert wait_gone(others) == []


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_web_role_serves_metrics(initialized: Run, config_file: Path, workers: str) -> None:
    before = set(config_file.parent.glob("serve-*.log"))
    proc = start(config_file, env={"GATEWAY_SERVE__WORKERS": workers})
    try:
        log = max(set(config_file.parent.glob("serve-*.log")) - before, key=os.path.getmtime)
        found = re.search(rb"web: listening on (http://127\.0\.0\.1:\d+)", log.read_bytes())
        assert found, log.read_text()
        answer = httpx.get(f"{found.group(1).decode()}/metrics", timeout=10)
        assert answer.status_code == 200
        assert 'gateway_mailboxes{state="active"} 0.0' in answer.text
        if workers == "2":  # HTTP is served by every worker, on one shared port
            serving = re.findall(
                rb"\[(smtp-\d)\] admin.server: web: listening on (\S+)", log.read_bytes()
            )
            assert {w for w, _ in serving} == {b"smtp-1", b"smtp-2"}, log.read_text()
            assert len({where for _, where in serving}) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0


def stored_pending(
    initialized: Run, config_file: Path, total: int, body: str = "x\r\n"
) -> Database:
    """`total` dropbox messages from carol@client.com (a contact) stored for Bob, none
    finished yet, as after a crash between 250 and the pipeline."""
    initialized("contacts", "add", "carol@client.com")
    config = load_config(config_file)
    db = Database(config.database_url)
    with db.session() as session:
        bob = get_user(session, config, "bob@acme.com").id
    store = MessageStore(db)
    for i in range(total):
        store.accept(
            make_message(message_id=f"<k{i}@x>", body=body),
            Arrival(bob, Source.DROPBOX, Keep.ALWAYS, source_key=f"smtp-{i}"),
        )
    return db


def counts(db: Database) -> tuple[int, int, int]:
    with db.read() as session:
        pending = session.scalar(
            select(func.count()).select_from(Sighting).where(Sighting.state == "pending")
        )
        messages = session.scalar(select(func.count()).select_from(Message))
        created = session.scalar(
            select(func.count()).select_from(Event).where(Event.kind == "message.created")
        )
    return int(pending or 0), int(messages or 0), int(created or 0)


def test_sigkill_while_finishing_loses_and_duplicates_nothing(
    initialized: Run, config_file: Path
) -> None:
    total = 1000
    db = stored_pending(initialized, config_file, total, body="x" * 2000 + "\r\n")
    # One message per transaction, so that a kill lands between many commits.
    env = {"GATEWAY_PIPELINE__BATCH_SIZE": "1"}
    kills = 0
    for _ in range(3):
        before = counts(db)[0]
        proc = start(config_file, env=env)
        deadline = time.monotonic() + 60
        while counts(db)[0] == before and time.monotonic() < deadline:
            time.sleep(0.005)
        if counts(db)[0] == 0:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            break
        proc.kill()  # SIGKILL in the middle of the work
        proc.wait(timeout=20)
        kills += 1
    proc = start(config_file)
    deadline = time.monotonic() + 120
    while counts(db)[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    pending, messages, created = counts(db)
    assert kills >= 1
    assert (pending, messages, created) == (0, total, total)
    with db.session() as session:
        links = session.scalar(select(func.count()).select_from(MessageContact))
    assert links == total
    db.dispose()


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_gone(pids: list[int], seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def test_killed_workers_are_replaced_and_finish_the_work(
    initialized: Run, config_file: Path
) -> None:
    total = 600
    db = stored_pending(initialized, config_file, total)
    env = {"GATEWAY_PIPELINE__BATCH_SIZE": "1", "GATEWAY_SERVE__WORKERS": "2"}
    proc = start(config_file, env=env)
    workers = children_of(proc.pid)
    assert len(workers) == 4  # smtp-1, smtp-2, background, delivery
    deadline = time.monotonic() + 60
    while counts(db)[0] == total and time.monotonic() < deadline:
        time.sleep(0.005)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while counts(db)[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    replaced = children_of(proc.pid)
    assert len(replaced) == 4 and not set(replaced) & set(workers)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert counts(db) == (0, total, total)
    assert wait_gone(replaced) == []
    db.dispose()


def test_a_killed_supervisor_leaves_no_worker_behind(initialized: Run, config_file: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"GATEWAY_SERVE__WORKERS": "2", "GATEWAY_DROPBOX__LISTEN": f"127.0.0.1:{port}"}
    proc = start(config_file, env=env)
    workers = children_of(proc.pid)
    assert len(workers) == 4  # smtp-1, smtp-2, background, delivery
    proc.kill()  # SIGKILL: the supervisor cannot tell anyone
    proc.wait(timeout=20)
    assert wait_gone(workers) == [], "workers outlived their supervisor"
    # No worker holds the listening socket: a new gateway starts on the same port.
    proc = start(config_file, env=env)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0


def trust_loopback(config_file: Path) -> None:
    with config_file.open("a") as handle:
        handle.write('policy = "trust-network"\ntrusted_networks = ["127.0.0.0/8"]\n')


@dataclass
class Served:
    """`gateway serve` taking dropbox mail from carol@client.com (a contact) for Bob."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    db: Database
    rcpt: str

    def wait_attached(self, total: int) -> None:
        deadline = time.monotonic() + 20
        while counts(self.db)[1] < total and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=40) == 0
        self.db.dispose()


def serve_dropbox(initialized: Run, config_file: Path, env: dict[str, str]) -> Served:
    trust_loopback(config_file)
    db = stored_pending(initialized, config_file, 0)
    config = load_config(config_file)
    with db.session() as session:
        rcpt = dropbox_address(config, get_user(session, config, "bob@acme.com"))
    logs = set(config_file.parent.glob("serve-*.log"))
    proc = start(config_file, env=env)
    port = dropbox_port(config_file.parent, logs)
    log = max(set(config_file.parent.glob("serve-*.log")) - logs, key=lambda p: p.stat().st_mtime)
    return Served(proc, port, log, db, rcpt)


def test_mail_taken_by_a_worker_is_finished_at_once(initialized: Run, config_file: Path) -> None:
    """The SMTP worker's `wake` reaches the background worker through the supervisor:
    with an hour between polls, only the wake can explain the prompt attachment."""
    env = {"GATEWAY_SERVE__WORKERS": "2", "GATEWAY_PIPELINE__POLL_INTERVAL": "3600"}
    served = serve_dropbox(initialized, config_file, env)
    for i in range(4):
        with smtplib.SMTP("127.0.0.1", served.port, timeout=20) as smtp:
            smtp.sendmail("carol@client.com", [served.rcpt], make_message(message_id=f"<w{i}@x>"))
    served.wait_attached(4)
    assert counts(served.db) == (0, 4, 4)
    served.stop()


def test_per_ip_connection_limit_holds_across_workers(initialized: Run, config_file: Path) -> None:
    logs = set(config_file.parent.glob("serve-*.log"))
    env = {"GATEWAY_SERVE__WORKERS": "3", "GATEWAY_DROPBOX__MAX_CONNECTIONS_PER_IP": "3"}
    proc = start(config_file, env=env)
    port = dropbox_port(config_file.parent, logs)
    clients = [smtplib.SMTP("127.0.0.1", port, timeout=20) for _ in range(3)]
    try:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", port, timeout=20)
        assert refused.value.smtp_code == 421
        clients.pop().quit()  # one leaves: its place is free again, whichever worker had it
        deadline = time.monotonic() + 20
        while True:
            try:
                clients.append(smtplib.SMTP("127.0.0.1", port, timeout=20))
                break
            except smtplib.SMTPConnectError:
                # The worker tells the supervisor just after the client left.
                assert time.monotonic() < deadline, "the freed place never came back"
                time.sleep(0.02)
    finally:
        for client in clients:
            client.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0


def deliver(conn: socket.socket, rcpt: str, message: bytes) -> None:
    """One message over a connected socket, command by command."""
    replies = conn.makefile("rb")

    def reply() -> bytes:
        while (line := replies.readline())[3:4] == b"-":
            pass
        return line

    assert reply().startswith(b"220")
    for command in (
        b"EHLO client.test",
        b"MAIL FROM:<carol@client.com>",
        f"RCPT TO:<{rcpt}>".encode(),
    ):
        conn.sendall(command + b"\r\n")
        assert reply().startswith(b"250")
    conn.sendall(b"DATA\r\n")
    assert reply().startswith(b"354")
    conn.sendall(message + b".\r\n")
    assert reply().startswith(b"250")
    conn.sendall(b"QUIT\r\n")
    assert reply().startswith(b"221")


def test_connections_are_spread_over_the_workers(initialized: Run, config_file: Path) -> None:
    """Twenty clients that connect at once do not all land on one SMTP worker."""
    served = serve_dropbox(initialized, config_file, {"GATEWAY_SERVE__WORKERS": "2"})
    # All connected before any is accepted, as a burst of clients would be: a
    # worker that woke first must not take them all.
    conns = [socket.create_connection(("127.0.0.1", served.port), timeout=20) for _ in range(20)]
    try:
        for i, conn in enumerate(conns):
            deliver(conn, served.rcpt, make_message(message_id=f"<s{i}@x>"))
    finally:
        for conn in conns:
            conn.close()
    served.stop()
    text = served.log.read_bytes()
    accepted = re.findall(rb"\[(smtp-\d)\] inbound.dropbox: dropbox: accepted", text)
    assert len(accepted) == 20
    assert set(accepted) == {b"smtp-1", b"smtp-2"}


def test_messages_arriving_together_are_finished_together(
    initialized: Run, config_file: Path
) -> None:
    """[pipeline] gather_time: woken by the first message, the pipeline waits that
    long and then finishes all that arrived meanwhile in one go."""
    env = {"GATEWAY_PIPELINE__GATHER_TIME": "2", "GATEWAY_PIPELINE__POLL_INTERVAL": "3600"}
    served = serve_dropbox(initialized, config_file, env)
    with smtplib.SMTP("127.0.0.1", served.port, timeout=20) as smtp:
        for i in range(4):  # well within the two seconds
            smtp.sendmail("carol@client.com", [served.rcpt], make_message(message_id=f"<g{i}@x>"))
    served.wait_attached(4)
    assert counts(served.db) == (0, 4, 4)
    served.stop()
    assert b"pipeline: finished 4 message(s)" in served.log.read_bytes()


@pytest.mark.parametrize("processes", [1, 2])
def test_mail_queued_by_the_background_worker_is_sent_by_the_delivery_workers(
    initialized: Run, config_file: Path, processes: int, authority: trustme.CA
) -> None:
    """With workers, delivery runs in processes of its own ([outbound] processes); the
    submission port's `queued` reaches them through the supervisor (with an hour
    between polls, only that explains a prompt delivery), and each message leaves
    once, whichever process claimed it."""
    from tests.peers.smtp_sink import Sink

    token = re.search(r"gwt_\S+", initialized("user", "token", "create", "bob@acme.com").out)
    assert token is not None
    relay_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(relay_tls)
    relay = Sink(tls=relay_tls)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "GATEWAY_SERVE__WORKERS": "1",
        "GATEWAY_SERVE__ROLES": '["submission", "delivery"]',
        "GATEWAY_SUBMISSION__LISTEN": f"127.0.0.1:{port}",
        "GATEWAY_OUTBOUND__DEFAULT_ROUTE": "relay",
        "GATEWAY_OUTBOUND__RELAY_URL": f"smtp://127.0.0.1:{relay.port}",
        "GATEWAY_OUTBOUND__RELAY_TLS_VERIFY": "false",
        "GATEWAY_OUTBOUND__POLL_INTERVAL": "3600",
        "GATEWAY_OUTBOUND__PROCESSES": str(processes),
        "GATEWAY_SECURITY__ALLOWED_PRIVATE_NETWORKS": '["127.0.0.0/8"]',
    }
    total = 30
    proc = start(config_file, env=env)
    try:
        workers = children_of(proc.pid)
        assert len(workers) == 1 + processes  # background (submission), delivery
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.starttls(context=insecure)
            client.login("bob@acme.com", token.group(0))
            sent_at = time.monotonic()
            for n in range(total):
                message = make_message(
                    from_="bob@acme.com", to="carol@client.test", message_id=f"<q{n}@acme.com>"
                )
                client.sendmail("bob@acme.com", ["carol@client.test"], message)
        while len(relay.received) < total and time.monotonic() - sent_at < 30:
            time.sleep(0.01)
        time.sleep(0.3)  # a message sent twice would arrive now
        ids = sorted(re.findall(rb"Message-ID: <(q\d+)@", b"".join(r.data for r in relay.received)))
        assert ids == sorted(f"q{n}".encode() for n in range(total))
    finally:
        proc.send_signal(signal.SIGTERM)
        relay.close()
    assert proc.wait(timeout=40) == 0
