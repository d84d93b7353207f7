"""The UID sets the header scan sends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.imap.rawfetch import uid_ranges
from tests.peers.dovecot import _uid_set


@given(st.sets(st.integers(min_value=1, max_value=5000), min_size=1, max_size=600))
def test_uid_ranges_name_exactly_the_uids_given(uids: set[int]) -> None:
    text = uid_ranges(uids)
    assert sorted(_uid_set(text)) == sorted(uids)
    assert len(text) <= len(",".join(map(str, uids)))  # never longer than the plain list


def test_uid_ranges_compress_runs() -> None:
    assert uid_ranges([5, 1, 2, 3, 7, 8]) == "1:3,5,7:8"
    assert uid_ranges(range(1, 20001)) == "1:20000"


# -- the FETCH reader, against a scripted server on loopback ---------------------------


class _Scripted:
    """A loopback IMAP peer that greets, answers CAPABILITY, LOGIN, SELECT and NOOP,
    and any other command with `script` (TAG replaced by the command's tag)."""

    def __init__(self, script: bytes) -> None:
        import socket
        import threading

        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.clients: list[Any] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        for client in self.clients:
            client._imap.shutdown()
        self.listener.close()
        self.thread.join(5)

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"* OK scripted\r\n")
            for line in lines:
                tag, _, command = line.partition(b" ")
                if command.upper().startswith(b"CAPABILITY"):
                    conn.sendall(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
                elif command.upper().startswith((b"LOGIN", b"SELECT")):
                    conn.sendall(tag + b" OK done\r\n")
                elif command.upper().startswith(b"NOOP"):
                    conn.sendall(tag + b" OK NOOP done\r\n")
                elif command.upper().startswith(b"LOGOUT"):
                    conn.sendall(b"* BYE\r\n" + tag + b" OK done\r\n")
                    return
                else:
                    conn.sendall(self.script.replace(b"TAG", tag))
                    if b"* BYE" in self.script:
                        return

    def client(self) -> Any:
        import imaplib
        import types

        client = types.SimpleNamespace(_imap=imaplib.IMAP4("127.0.0.1", self.port, timeout=5))
        self.clients.append(client)
        client._imap.login("user", "pw")
        client._imap.select("INBOX")
        return client


@pytest.fixture
def scripted() -> Iterator[Callable[[bytes], _Scripted]]:
    peers: list[_Scripted] = []

    def start(script: bytes) -> _Scripted:
        peers.append(_Scripted(script))
        return peers[-1]

    yield start
    for peer in peers:
        peer.close()


def test_fetch_reader_takes_each_response_however_the_server_orders_it(
    scripted: Callable[[bytes], _Scripted],
) -> None:
    from gateway.imap.rawfetch import HEADER_KEY, fetch_headers

    peer = scripted(
        b"* 1 FETCH (UID 10 BODY[HEADER.FIELDS (FROM)] {13}\r\nFrom: a@b.c\r\n)\r\n"
        b"* 4 EXISTS\r\n"  # unsolicited, between responses
        b"* 2 FETCH (BODY[HEADER.FIELDS (FROM)] {13}\r\nFrom: d@e.f\r\n UID 11)\r\n"
        b"* 3 FETCH (FLAGS (\\Seen))\r\n"  # a flag change with no UID: not ours
        b"* 3 FETCH (UID 12 BODY[HEADER.FIELDS (FROM)] NIL)\r\n"
        b'* 4 FETCH (UID 13 BODY[HEADER.FIELDS (FROM)] "")\r\n'
        b"* 5 FETCH (UID 14 X-ODD {3}\r\nxyz BODY[HEADER.FIELDS (FROM)] {0}\r\n)\r\n"
        b"* 6 FETCH (UID 99 BODY[HEADER.FIELDS (FROM)] {2}\r\n\r\n)\r\n"  # not asked for
        b"TAG OK FETCH done\r\n"
    )
    client = peer.client()
    got = fetch_headers(client, [10, 11, 12, 13, 14], ["BODY.PEEK[HEADER.FIELDS (FROM)]"])
    assert {uid: item.get(HEADER_KEY) for uid, item in got.items()} == {
        10: b"From: a@b.c\r\n",
        11: b"From: d@e.f\r\n",
        12: b"",
        13: b"",
        14: b"xyz",  # the first literal of the response
    }
    assert client._imap.noop()[0] == "OK"  # imaplib's own state is left clean


def test_fetch_reader_raises_on_a_refused_fetch(scripted: Callable[[bytes], _Scripted]) -> None:
    from imapclient.exceptions import IMAPClientError

    from gateway.imap.rawfetch import fetch_headers

    peer = scripted(b"* 1 FETCH (UID 10 FLAGS ())\r\nTAG NO [SERVERBUG] try later\r\n")
    client = peer.client()
    with pytest.raises(IMAPClientError, match=r"NO \[SERVERBUG\] try later"):
        fetch_headers(client, [10], ["BODY.PEEK[HEADER]"])
    assert client._imap.noop()[0] == "OK"


def test_fetch_reader_stops_at_bye_and_at_a_cut_connection(
    scripted: Callable[[bytes], _Scripted],
) -> None:
    import imaplib

    from gateway.imap.rawfetch import fetch_headers

    for script in (
        b"* 1 FETCH (UID 10 BODY[HEADER] {5}\r\nab\r\n)\r\n* BYE shutting down\r\n",
        b"* 1 FETCH (UID 10 BODY[HEADER] {500}\r\nonly part of it",
    ):
        peer = scripted(script + (b"" if b"BYE" in script else b"* BYE"))
        with pytest.raises(imaplib.IMAP4.abort):
            fetch_headers(peer.client(), [10], ["BODY.PEEK[HEADER]"])
