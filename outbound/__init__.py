"""Outbound mail, the roles that send it: SMTP submission for the CRM (submission),
message hygiene and composing (hygiene, compose), DKIM keys and signing (dkim_keys,
dkim_sign), and delivery (claims, routes, results, the copy in Sent, the role).
Their CLI verbs, `dkim`, `queue` and `user route`, live in outbound.cli."""
