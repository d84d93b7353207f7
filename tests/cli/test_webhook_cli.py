"""`gateway webhook add|list|test|log|retry|rotate|enable|remove`."""

from __future__ import annotations

import re
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from admin.webhook_delivery import Dispatcher
from gateway.config import load_config
from gateway.db import Database
from tests.helpers.cli import Run
from tests.peers.webhook_receiver import Receiver


def test_an_endpoint_is_added_tested_logged_and_removed(
    initialized: Run, config_file: Path
) -> None:
    with config_file.open("a") as handle:
        handle.write('[security]\nallowed_private_networks = ["127.0.0.0/8"]\n')
    receiver = Receiver(statuses=[500, 204])
    try:
        refused = initialized("webhook", "add", "http://10.1.2.3/hooks")
        assert refused.code == 1 and "private" in refused.err
        added = initialized("webhook", "add", receiver.url, "--event", "message.sent")
        assert added.code == 0, added.err
        secret = re.search(r"whsec_\S+", added.out)
        assert secret is not None
        [listed] = initialized("webhook", "list", "--json").json()
        assert listed["url"] == receiver.url and listed["event_types"] == ["message.sent"]
        assert secret.group(0) not in initialized("webhook", "list").out
        assert initialized("webhook", "test", str(listed["id"])).code == 0
        config = load_config(config_file)
        db = Database(config.database_url)
        dispatcher = Dispatcher(db, config)
        dispatcher.fan_out()
        assert [dispatcher.attempt(j) for j in dispatcher.claim(5)] == ["pending"]  # the 500
        [logged] = initialized("webhook", "log", str(listed["id"]), "--json").json()
        assert logged["type"] == "webhook.test" and logged["last_status"] == 500
        assert initialized("webhook", "retry", str(logged["id"])).code == 0
        assert [dispatcher.attempt(j) for j in dispatcher.claim(5)] == ["delivered"]
        assert Webhook(secret.group(0)).verify(
            receiver.requests[-1].body, receiver.requests[-1].headers
        )
        again = initialized("webhook", "retry", str(logged["id"]))
        assert again.code == 1 and "delivered already" in again.err
        rotated = initialized("webhook", "rotate", str(listed["id"]))
        assert re.search(r"whsec_\S+", rotated.out) is not None
        assert initialized("webhook", "remove", str(listed["id"])).code == 0
        assert initialized("webhook", "list", "--json").json() == []
        db.dispose()
    finally:
        receiver.close()
