"""The submission port, driven by smtplib over STARTTLS and implicit TLS (a trustme CA):
AUTH before MAIL and TLS before AUTH, the signed-in user's own addresses only, failed
AUTH always answered and rate-limited, and 250 only once the message is queued."""

from __future__ import annotations

import base64
import smtplib

import pytest
from sqlalchemy import select

from gateway.models import Account, Event, OutboundMessage, OutboundRecipient, RawMessage
from tests.helpers.outbound import Submission

MESSAGE = (
    b"From: Bob <bob@acme.com>\r\nTo: Carol <carol@client.com>\r\n"
    b"Bcc: boss@acme.com\r\nSubject: Our offer\r\n\r\nHello Carol,\r\nhere it is.\r\n"
)


def queued(submission: Submission) -> list[tuple[OutboundMessage, list[str], bytes]]:
    with submission.db.read() as session:
        out = []
        for message in session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)):
            rcpts = session.scalars(
                select(OutboundRecipient.address)
                .where(OutboundRecipient.message_id == message.id)
                .order_by(OutboundRecipient.id)
            ).all()
            raw = session.get_one(RawMessage, message.raw_message_id).data
            out.append((message, list(rcpts), raw))
        return out


def test_a_signed_in_user_queues_a_message(submission: Submission) -> None:
    with submission.signed_in() as client:
        refused = client.sendmail(
            "bob@acme.org", ["carol@client.com", "boss@acme.com"], MESSAGE
        )  # bob@acme.org: Bob's alias
        code, _ = client.noop()
    assert refused == {} and code == 250
    [(message, rcpts, raw)] = queued(submission)
    assert message.state == "queued" and message.source == "smtp"
    assert message.mail_from == "bob@acme.org"
    assert rcpts == ["carol@client.com", "boss@acme.com"]
    assert raw.startswith(b"Message-ID: <") and b"\r\nDate: " in raw  # added
    assert f"<{message.message_id_header}>".encode() in raw
    assert message.message_id_header.endswith("@acme.com")  # minted under the sender's domain
    assert b"Bcc: boss@acme.com\r\n" in raw  # kept in the stored copy
    with submission.db.read() as session:
        kinds = list(session.scalars(select(Event.kind)))
    assert "message.queued" in kinds


def test_the_reply_names_the_queue_id_only_after_the_commit(submission: Submission) -> None:
    with submission.signed_in() as client:
        client.mail("bob@acme.com")
        client.rcpt("carol@client.com")
        code, reply = client.data(MESSAGE)
    assert code == 250
    [(message, _, _)] = queued(submission)
    assert reply.decode().startswith(f"2.0.0 Queued as {message.id} <")


def test_no_auth_before_tls_and_no_mail_before_auth(submission: Submission) -> None:
    with submission.client(starttls=False) as plain:
        assert "auth" not in plain.esmtp_features  # never offered in cleartext
        assert "starttls" in plain.esmtp_features
        assert {"pipelining", "enhancedstatuscodes", "smtputf8"} <= set(plain.esmtp_features)
        assert (
            plain.docmd("AUTH", "PLAIN " + _plain("", "bob@acme.com", submission.token))[0] == 530
        )
        assert plain.docmd("MAIL", "FROM:<bob@acme.com>")[0] == 530
    with submission.client() as tls:  # TLS, not signed in: an open-relay probe
        assert "auth" in tls.esmtp_features
        code, reply = tls.docmd("MAIL", "FROM:<bob@acme.com>")
        assert (code, reply[:5]) == (530, b"5.7.0")
        with pytest.raises(smtplib.SMTPSenderRefused):
            tls.sendmail("someone@example.org", ["victim@example.net"], MESSAGE)
    assert queued(submission) == []


def test_wrong_credentials_are_answered_and_then_refused_for_a_while(
    submission: Submission,
) -> None:
    with submission.client() as client:
        for attempt in range(5):
            code, reply = client.docmd("AUTH", "PLAIN " + _plain("", "bob@acme.com", "guess"))
            assert (code, reply[:5]) == (535, b"5.7.8"), attempt
        # Past [submission] auth_failures: refused before the credentials are even read.
        code, reply = client.docmd("AUTH", "PLAIN " + _plain("", "bob@acme.com", submission.token))
        assert (code, reply[:5]) == (454, b"4.7.0")
    with submission.client() as again:  # a new connection from the same address
        code, _ = again.docmd("AUTH", "PLAIN " + _plain("", "ann@acme.com", "guess"))
        assert code == 454


def test_refusals_after_the_auth_lockout_count_as_errors_and_end_the_connection(
    submission: Submission,
) -> None:
    limit = submission.config.submission.max_errors
    failures = submission.config.submission.auth_failures
    client = submission.client()
    for _ in range(failures):
        assert client.docmd("AUTH", "PLAIN " + _plain("", "bob@acme.com", "guess"))[0] == 535
    # Locked out: each further try is answered 454, and counts as an error too.
    for _ in range(limit - failures):
        code, _ = client.docmd("AUTH", "PLAIN " + _plain("", "bob@acme.com", submission.token))
        assert code == 454
    code, reply = client.getreply()  # no more tries on this connection
    assert (code, reply[:5]) == (421, b"4.7.0")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    client.close()


def test_an_account_token_with_scope_send_signs_in_any_user_of_the_account(
    submission: Submission,
) -> None:
    from gateway.accounts import add_user, create_account
    from gateway.tokens import create_account_token

    with submission.db.session() as session:
        account_id = session.scalars(select(Account).where(Account.name == "acme")).one().id
        sending = create_account_token(session, account_id, ["send"]).token
        reading = create_account_token(session, account_id, ["read", "write"]).token
        other = create_account(session, "other")
        add_user(session, submission.config, other, "olga@other.test", "Olga")
        foreign = create_account_token(session, other.id, ["send"]).token
    with submission.client() as client:
        client.login("ann@acme.com", sending)
        assert (
            client.sendmail(
                "ann@acme.com",
                ["carol@client.com"],
                MESSAGE.replace(b"Bob <bob@acme.com>", b"Ann <ann@acme.com>"),
            )
            == {}
        )
    for user, token in (("ann@acme.com", reading), ("bob@acme.com", foreign)):
        with submission.client() as client, pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(user, token)
    [(message, _, _)] = queued(submission)
    assert message.mail_from == "ann@acme.com"


def test_an_unknown_user_and_a_revoked_token_are_refused(submission: Submission) -> None:
    from gateway.tokens import revoke_token

    with submission.client() as client:
        assert client.docmd("AUTH", "PLAIN " + _plain("", "nobody@acme.com", "x"))[0] == 535
    with submission.db.session() as session:
        revoke_token(session, submission.token.split("_")[1])
    with submission.client() as client, pytest.raises(smtplib.SMTPAuthenticationError):
        client.login("bob@acme.com", submission.token)


def test_a_token_signs_in_only_its_own_user(submission: Submission) -> None:
    with submission.client() as client, pytest.raises(smtplib.SMTPAuthenticationError):
        client.login("ann@acme.com", submission.token)  # Bob's token


def test_a_plain_authorization_identity_of_someone_else_is_refused(
    submission: Submission,
) -> None:
    with submission.client() as client:
        code, reply = client.docmd(
            "AUTH", "PLAIN " + _plain("ann@acme.com", "bob@acme.com", submission.token)
        )
        assert (code, reply[:5]) == (535, b"5.7.8")
        assert b"Authorization identity" in reply
        same = _plain("bob@acme.com", "bob@acme.com", submission.token)
        assert client.docmd("AUTH", "PLAIN " + same)[0] == 235


def test_auth_login_works_and_a_cancelled_exchange_is_answered(
    submission: Submission,
) -> None:
    with submission.client() as client:
        assert client.docmd("AUTH", "LOGIN")[0] == 334
        assert client.docmd(_b64("bob@acme.com"))[0] == 334
        assert client.docmd("*")[0] == 501  # cancelled: answered, not left hanging
        assert client.docmd("AUTH", "LOGIN " + _b64("bob@acme.com"))[0] == 334
        assert client.docmd(_b64(submission.token))[0] == 235
        assert client.docmd("AUTH", "LOGIN")[0] == 503  # already signed in


@pytest.mark.parametrize(
    ("sender", "header_from", "expected"),
    [
        ("ann@acme.com", b"bob@acme.com", "mail"),  # another user's address
        ("carol@client.com", b"bob@acme.com", "mail"),  # a stranger's
        ("bob@acme.com", b"Ann <ann@acme.com>", "data"),  # the header From is someone else
        ("bob@acme.com", b"bob@acme.com, ann@acme.com", "data"),
    ],
)
def test_only_the_signed_in_users_addresses_may_send(
    submission: Submission, sender: str, header_from: bytes, expected: str
) -> None:
    message = MESSAGE.replace(b"From: Bob <bob@acme.com>", b"From: " + header_from)
    with submission.signed_in() as client:
        code, reply = client.mail(sender)
        if expected == "mail":
            assert (code, reply[:5]) == (553, b"5.7.1")
            return
        assert code == 250
        client.rcpt("carol@client.com")
        code, reply = client.data(message)
        assert (code, reply[:5]) == (553, b"5.7.1")
    assert queued(submission) == []


def test_a_null_sender_is_refused(submission: Submission) -> None:
    with submission.signed_in() as client:
        code, reply = client.docmd("MAIL", "FROM:<>")
        assert (code, reply[:5]) == (553, b"5.7.1")


@pytest.mark.parametrize(
    "bad",
    [
        b"Subject: =?utf-8?q?hi=0D=0ABcc:_victim@example.net?=\r\n",  # encoded CRLF
        b"Subject: =?utf-8?b?aGkNCkJjYzogdmljdGltQGV4YW1wbGUubmV0?=\r\n",  # the same, base64
        b"Subject: a\x00b\r\n",
        b"not a header line\r\n",
        b"Subject: one\r\nSubject: two\r\n",
    ],
)
def test_malformed_or_injected_headers_are_refused(submission: Submission, bad: bytes) -> None:
    message = MESSAGE.replace(b"Subject: Our offer\r\n", bad)
    with submission.signed_in() as client:
        client.mail("bob@acme.com")
        client.rcpt("carol@client.com")
        code, reply = client.data(message)
    assert (code, reply[:5]) == (554, b"5.6.0")
    assert queued(submission) == []


def test_a_line_over_the_smtp_limit_is_refused(submission: Submission) -> None:
    message = MESSAGE.replace(b"Subject: Our offer", b"X-Long: " + b"x" * 1000)
    with submission.signed_in() as client:
        client.mail("bob@acme.com")
        client.rcpt("carol@client.com")
        code, reply = client.data(message)
    assert (code, reply[:5]) == (500, b"5.5.2")  # RFC 5321 4.5.3.1.6, before our own check
    assert queued(submission) == []


def test_bare_line_ends_are_queued_as_crlf(submission: Submission) -> None:
    with submission.signed_in() as client:
        client.mail("bob@acme.com")
        client.rcpt("carol@client.com")
        # smtplib turns bare LF into CRLF itself: send the raw DATA by hand.
        client.putcmd("DATA")
        assert client.getreply()[0] == 354
        client.send(b"From: bob@acme.com\r\nTo: carol@client.com\nSubject: lf\r\n")
        client.send(b"\r\none\ntwo\rthree\r\n.\r\n")
        assert client.getreply()[0] == 250
    [(_, _, raw)] = queued(submission)
    assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
    assert raw.endswith(b"\r\none\r\ntwo\r\nthree\r\n")


def test_an_oversized_message_is_refused(submission: Submission) -> None:
    with submission.signed_in() as client:
        client.mail("bob@acme.com")
        client.rcpt("carol@client.com")
        code, _ = client.data(MESSAGE + (b"x" * 990 + b"\r\n") * 260)  # 990 x 260 > 200 KB
    assert code == 552
    assert queued(submission) == []


def test_eight_bit_and_smtputf8_messages_are_kept_intact(submission: Submission) -> None:
    message = (
        "From: bob@acme.com\r\nTo: jürgen@müller.example\r\nSubject: Grüße\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Schöne Grüße\r\n"
    ).encode()
    with submission.signed_in() as client:
        refused = client.sendmail(
            "bob@acme.com", ["jürgen@müller.example"], message, mail_options=["SMTPUTF8"]
        )
    assert refused == {}
    [(_, rcpts, raw)] = queued(submission)
    assert rcpts == ["jürgen@müller.example"]
    assert raw.endswith(message.split(b"\r\n", 3)[3])  # everything after the added headers


def test_the_implicit_tls_listener_offers_and_takes_auth(submission: Submission) -> None:
    with submission.implicit() as client:
        assert "auth" in client.esmtp_features
        assert "starttls" not in client.esmtp_features
        client.login("bob@acme.com", submission.token)
        assert client.sendmail("bob@acme.com", ["carol@client.com"], MESSAGE) == {}
    assert len(queued(submission)) == 1


def test_too_many_recipients_are_refused(submission: Submission) -> None:
    with submission.signed_in() as client:
        client.mail("bob@acme.com")
        codes = [client.rcpt(f"r{n}@client.com")[0] for n in range(101)]
    assert codes[:100] == [250] * 100 and codes[100] == 452


def _plain(authzid: str, user: str, secret: str) -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{secret}".encode()).decode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("submission_options", [{"max_messages_per_hour": 2}])
def test_a_user_over_the_hourly_limit_is_told_to_wait(submission: Submission) -> None:
    with submission.signed_in() as client:
        for _ in range(2):
            assert client.sendmail("bob@acme.com", ["carol@client.com"], MESSAGE) == {}
        code, reply = client.mail("bob@acme.com")
    assert (code, reply[:5]) == (451, b"4.7.1")
    assert len(queued(submission)) == 2


def test_failed_auth_is_counted_in_the_database_for_every_node(submission: Submission) -> None:
    """Behind several nodes a guesser gets no more tries: the failures one node saw
    lock the address and the user out on another (sharing the database), and they
    do not count against the web sign-in's own limits."""
    from gateway.models import SignInFailure
    from outbound.submission import SubmissionHandler

    other_node = SubmissionHandler(submission.db, submission.config)
    assert not other_node.failures.blocked("127.0.0.1", "bob@acme.com")
    with submission.client() as client:
        for _ in range(submission.config.submission.auth_failures):
            assert client.docmd("AUTH", "PLAIN " + _plain("", "bob@acme.com", "guess"))[0] == 535
    assert other_node.failures.blocked("127.0.0.1")  # the address
    assert other_node.failures.blocked("bob@acme.com")  # the user, from anywhere
    assert not other_node.failures.blocked("192.0.2.1", "ann@acme.com")
    with submission.db.read() as session:
        keys = set(session.scalars(select(SignInFailure.key)))
    assert keys == {"smtp:127.0.0.1", "smtp:bob@acme.com"}


@pytest.mark.parametrize("submission_options", [{"proxy_protocol": True}])
def test_behind_a_load_balancer_the_proxy_header_gives_the_clients_address(
    submission: Submission,
) -> None:
    """[submission] proxy_protocol: the balancer's PROXY header comes first; the
    client's address it gives is the one the AUTH failures count. A connection
    without the header is not served."""
    import socket

    from gateway.models import SignInFailure
    from tests.helpers.proxied import ProxiedSMTP

    with ProxiedSMTP("203.0.113.9", "127.0.0.1", submission.port) as client:
        client.ehlo("crm.test")
        client.starttls(context=submission.client_tls)
        client.ehlo("crm.test")
        assert client.docmd("AUTH", "PLAIN " + _plain("", "bob@acme.com", "guess"))[0] == 535
        client.login("bob@acme.com", submission.token)
        client.sendmail("bob@acme.com", ["carol@client.test"], MESSAGE)
    with submission.db.read() as session:
        keys = set(session.scalars(select(SignInFailure.key)))
    assert "smtp:203.0.113.9" in keys and "smtp:127.0.0.1" not in keys
    assert len(queued(submission)) == 1
    with socket.create_connection(("127.0.0.1", submission.port), timeout=30) as bare:
        bare.sendall(b"EHLO crm.test\r\n")  # no PROXY header first: not served
        assert bare.recv(1024) == b""  # closed, with no greeting
