"""The sections of mail coming in: the dropbox, the pipeline, IMAP sync, OAuth2 and the
calendars."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.doc import doc


@dataclass(frozen=True)
class DropboxConfig:
    """The BCC dropbox: its addresses and the SMTP server that receives them."""

    listen: str = field(
        default="127.0.0.1:2525",
        metadata=doc('Address and port of the dropbox SMTP server (production: "0.0.0.0:25").'),
    )
    hostname: str = field(
        default="localhost",
        metadata=doc("Name the server gives in its greeting and EHLO reply."),
    )
    policy: str = field(
        default="verify",
        metadata=doc(
            '"verify": the From or envelope sender must be an address of a user of the '
            "account that owns the dropbox address, and pass SPF or DKIM aligned with it; "
            'else 550 5.7.1. "quarantine": accept failures but hold them until the user '
            'approves. "trust-network": clients in trusted_networks skip the checks.',
            ("verify", "quarantine", "trust-network"),
        ),
    )
    trusted_networks: tuple[str, ...] = field(
        default=(),
        metadata=doc('Networks that skip sender checks under "trust-network", e.g. "127.0.0.0/8".'),
    )
    max_message_size: int = field(
        default=25 * 1024 * 1024,
        metadata=doc("Largest message accepted, in bytes (advertised as SIZE)."),
    )
    max_recipients: int = field(
        default=100,
        metadata=doc("Recipients accepted per message; more get 452 4.5.3."),
    )
    max_errors: int = field(
        default=20,
        metadata=doc("Error replies (bad commands, unknown recipients) before 421 and hang-up."),
    )
    timeout: float = field(
        default=300.0,
        metadata=doc("Seconds a client may stay silent before 421 and hang-up."),
    )
    max_session_time: float = field(
        default=600.0,
        metadata=doc(
            "Seconds one connection may last in all, however busy (a client dripping bytes "
            "never reaches the idle timeout); then 421 and hang-up."
        ),
    )
    max_connections_per_ip: int = field(
        default=20,
        metadata=doc("Concurrent connections from one IP; more get 421 4.7.0."),
    )
    connections_per_minute_per_ip: int = field(
        default=300,
        metadata=doc("New connections per minute from one IP; more get 421 4.7.0."),
    )
    proxy_protocol: bool = field(
        default=False,
        metadata=doc(
            "Expect a PROXY protocol (v1 or v2) header first, as behind a TCP load balancer."
        ),
    )
    domain: str = field(
        default="dropbox.localhost",
        metadata=doc("Domain of every dropbox address; point its MX at the gateway."),
    )
    address_format: str = field(
        default="{token}",
        metadata=doc(
            'Local part of a dropbox address; must contain "{token}" (e.g. "bcc-{token}").'
        ),
    )


@dataclass(frozen=True)
class PipelineConfig:
    """The worker that finishes stored messages (parse, match, thread, attach)."""

    poll_interval: float = field(
        default=2.0,
        metadata=doc("Seconds between looks for unfinished messages."),
    )
    batch_size: int = field(
        default=100,
        metadata=doc("Messages finished per database transaction."),
    )
    gather_time: float = field(
        default=0.02,
        metadata=doc(
            "Seconds the pipeline waits after being told of a new message, so that "
            "messages arriving together are finished in one transaction (less CPU "
            "under load; a message is attached that much later). 0: at once."
        ),
    )


@dataclass(frozen=True)
class ImapConfig:
    """IMAP sync of connected mailboxes (the `imap` role and `gateway mailbox`)."""

    window_days: int = field(
        default=90,
        metadata=doc("The initial sync reads mail of this many days back, newest first."),
    )
    batch_size: int = field(
        default=2000,
        metadata=doc(
            "Messages per FETCH of headers (and per checkpoint). On a first scan of "
            "Dovecot, 2000 took half the time of 500."
        ),
    )
    poll_interval: float = field(
        default=300.0,
        metadata=doc("Seconds between looks for new mail in folders without IDLE (and in Sent)."),
    )
    idle_refresh: float = field(
        default=25 * 60.0,
        metadata=doc("Seconds after which IDLE is re-issued (RFC 2177: before 29 minutes)."),
    )
    timeout: float = field(
        default=60.0,
        metadata=doc("Seconds to wait for an IMAP server to connect or answer."),
    )
    max_connections: int = field(
        default=500,
        metadata=doc(
            "Mailboxes one `imap` role keeps in sync at once: each holds one connection "
            "and one thread. Mailboxes past this wait (and a warning is logged)."
        ),
    )
    backoff_max: float = field(
        default=600.0,
        metadata=doc("Longest wait, in seconds, between reconnects after network errors."),
    )
    max_message_size: int = field(
        default=50 * 1024 * 1024,
        metadata=doc(
            "Largest server response read at once, in bytes (a message, a literal); "
            "a bigger one fails that mailbox's sync, never the process."
        ),
    )
    audit_interval: float = field(
        default=24 * 3600.0,
        metadata=doc(
            "Seconds between completeness audits of each mailbox (the server's census of "
            "the window against what the gateway stored; what is missing is fetched). 0: never."
        ),
    )
    tls_verify: bool = field(
        default=True,
        metadata=doc(
            "Verify IMAP/SMTP server certificates. A mailbox may still be added with "
            "--tls-no-verify for a self-signed server."
        ),
    )
    compress: bool = field(
        default=True,
        metadata=doc(
            "Compress IMAP sessions with servers that offer COMPRESS=DEFLATE (RFC 4978: "
            "Gmail, Dovecot, Cyrus; not Microsoft): a few times fewer bytes downloaded "
            "for a little CPU."
        ),
    )


@dataclass(frozen=True)
class OAuth2Config:
    """OAuth2 apps that mailboxes of Google and Microsoft sign in with (XOAUTH2)."""

    google_client_id: str = field(
        default="",
        metadata=doc(
            "Client id of your Google app (a Web client whose redirect URI is "
            "<[web] public_url>/mailboxes/connect/callback). Empty: no Gmail sign-in."
        ),
    )
    google_client_secret: str = field(
        default="", metadata=doc("Its client secret (or GATEWAY_OAUTH2__GOOGLE_CLIENT_SECRET).")
    )
    google_token_url: str = field(
        default="https://oauth2.googleapis.com/token",
        metadata=doc("Google's token endpoint (where access tokens are refreshed)."),
    )
    google_authorize_url: str = field(
        default="https://accounts.google.com/o/oauth2/v2/auth",
        metadata=doc("Google's sign-in page (the authorization endpoint)."),
    )
    google_scope: str = field(
        default=(
            "https://mail.google.com/ https://www.googleapis.com/auth/calendar.readonly "
            "openid email"
        ),
        metadata=doc(
            "What the gateway asks Google for: IMAP and SMTP, reading the calendars "
            "(CalDAV), and the address."
        ),
    )
    microsoft_client_id: str = field(
        default="",
        metadata=doc(
            "Application (client) id of your Microsoft Entra app (Web redirect URI "
            "<[web] public_url>/mailboxes/connect/callback). Empty: no Microsoft sign-in."
        ),
    )
    microsoft_client_secret: str = field(default="", metadata=doc("Its client secret."))
    microsoft_tenant: str = field(
        default="common",
        metadata=doc(
            '"common" (work, school and personal accounts), "organizations", "consumers" '
            "or a tenant id; Outlook.com accounts need common or consumers."
        ),
    )
    microsoft_token_url: str = field(
        default="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        metadata=doc("Microsoft's token endpoint; {tenant} is replaced."),
    )
    microsoft_authorize_url: str = field(
        default="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        metadata=doc("Microsoft's sign-in page; {tenant} is replaced."),
    )
    microsoft_scope: str = field(
        default=(
            "https://outlook.office.com/IMAP.AccessAsUser.All "
            "https://outlook.office.com/SMTP.Send offline_access openid email "
            "https://graph.microsoft.com/Calendars.Read"
        ),
        metadata=doc(
            "What the gateway asks Microsoft for: IMAP, SMTP, a refresh token, and reading "
            "the calendars (Microsoft Graph). The code gives a token for the first resource "
            "(IMAP and SMTP); the calendar sync asks for a Graph token with the refresh "
            "token ([calendar] graph_scope)."
        ),
    )
    timeout: float = field(default=20.0, metadata=doc("Seconds to wait for a token endpoint."))


@dataclass(frozen=True)
class CalendarConfig:
    """Calendar sync of connected mailboxes: CalDAV, or Microsoft Graph for Microsoft."""

    enabled: bool = field(
        default=True,
        metadata=doc("Whether the `calendar` role syncs the calendars of connected mailboxes."),
    )
    interval: float = field(
        default=300.0, metadata=doc("Seconds between two syncs of a mailbox's calendars.")
    )
    days_back: int = field(
        default=90, metadata=doc("How far back the synced window reaches, in days.")
    )
    days_ahead: int = field(
        default=365, metadata=doc("How far ahead the synced window reaches, in days.")
    )
    page_days: int = field(
        default=31,
        metadata=doc(
            "Days of the window fetched in one CalDAV request during a first sync: memory "
            "holds one such page of events at a time."
        ),
    )
    graph_url: str = field(
        default="https://graph.microsoft.com/v1.0",
        metadata=doc("Microsoft Graph's base URL (calendarView delta of Microsoft mailboxes)."),
    )
    graph_scope: str = field(
        default="https://graph.microsoft.com/Calendars.Read offline_access",
        metadata=doc("The scope of the Graph token asked for with a mailbox's refresh token."),
    )
    graph_page_size: int = field(
        default=100, metadata=doc("Events per Graph page (Prefer: odata.maxpagesize).")
    )
    timeout: float = field(default=30.0, metadata=doc("Seconds to wait for a calendar server."))
