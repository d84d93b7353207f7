"""Helpers that several test packages share: running roles (roles), the web role
(web), messages (mail), the pipeline (pipeline), IMAP sync (imap), outbound
(outbound), the dropbox (dropbox), `gateway serve` (serve), the CLI (cli) and
polling (wait). Peers (servers the tests talk to) live in tests/peers."""
