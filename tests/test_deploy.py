"""The systemd unit set in deploy/systemd (docs/several-nodes.md): systemd itself
finds nothing wrong with the units, and three nodes started with exactly the
command, environment and env files the units give, on the config file they name,
share one database (each its own node name and ports) and answer /healthz.

The units assume the install prefix /opt/crm-email-gateway and the config in
/etc/crm-email-gateway; here those are this checkout and a copy of deploy/systemd.
The test database and a scratch var_dir come in as environment variables, the way
an operator would override the shipped config.toml."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import trustme
from sqlalchemy import select

from gateway.db import Database
from gateway.models import Lease
from gateway.vault import ensure_key_file
from tests.helpers.wait import eventually

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
PREFIX = "/opt/crm-email-gateway"
ETC = "/etc/crm-email-gateway"
NODES = ("node-1", "node-2", "node-3")


def _service(unit: Path, instance: str) -> dict[str, list[str]]:
    """The [Service] keys of a unit (each with every value it is given), %i and %I
    replaced by the instance name."""
    keys: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value.replace("%i", instance).replace("%I", instance))
    return keys


def test_systemd_finds_nothing_wrong_with_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is not installed (apt-get install systemd)")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    for unit in UNITS.iterdir():
        if unit.suffix in (".service", ".target"):
            text = unit.read_text().replace(PREFIX, str(ROOT))
            (tmp_path / unit.name).write_text(text)
    names = ["gateway-migrate.service", "gateway@node-1.service", "gateway.target"]
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Only the units' own lines: systemd also speaks of the machine's other units.
    ours = [line for line in result.stderr.splitlines() if "gateway" in line]
    assert result.returncode == 0 and not ours, result.stderr


@pytest.mark.slow
def test_three_nodes_started_as_the_units_say_share_the_database(
    tmp_path: Path, db: Database, database_url: str
) -> None:
    etc = tmp_path / "etc"
    shutil.copytree(UNITS, etc)
    config_file = etc / "config.toml"
    config_file.write_text(config_file.read_text().replace(ETC, str(etc)))
    (etc / "tls").mkdir()
    cert = trustme.CA().issue_cert("mx.example.com")  # the operator's certificate
    cert.private_key_pem.write_to_path(str(etc / "tls" / "privkey.pem"))
    cert.cert_chain_pems[0].write_to_path(str(etc / "tls" / "fullchain.pem"))
    var = tmp_path / "var"
    ensure_key_file(var / "secret.key")  # the one key every node shares
    service = _service(UNITS / "gateway@.service", "node-1")
    assert service["Type"] == ["exec"] and service["KillSignal"] == ["SIGTERM"]
    procs = {}
    ports = []
    try:
        for name in NODES:
            service = _service(UNITS / "gateway@.service", name)
            env = {**os.environ, "GATEWAY_DATABASE__URL": database_url}
            env["GATEWAY_PATHS__VAR_DIR"] = str(var)
            for assignment in service["Environment"]:
                key, _, value = assignment.partition("=")
                env[key] = value
            for path in service["EnvironmentFile"]:
                env.update(_env_file(Path(path.lstrip("-").replace(ETC, str(etc)))))
            # Loopback only here: the shipped files listen on every address.
            for key in ("GATEWAY_DROPBOX__LISTEN", "GATEWAY_SUBMISSION__LISTEN"):
                env[key] = env[key].replace("0.0.0.0", "127.0.0.1")
            ports.append(int(env["GATEWAY_WEB__LISTEN"].rsplit(":", 1)[1]))
            [command] = service["ExecStart"]
            argv = [
                part.replace(PREFIX, str(ROOT)).replace(ETC, str(etc))
                for part in shlex.split(command)
            ]
            with (tmp_path / f"{name}.log").open("wb") as log:
                procs[name] = subprocess.Popen(
                    argv, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
                )
        for name in NODES:
            log_file = tmp_path / f"{name}.log"
            eventually(lambda: b"gateway: ready" in log_file.read_bytes(), 60)  # noqa: B023
        assert len(set(ports)) == 3
        for port in ports:
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        eventually(lambda: _announced(db) == {f"{name}/background" for name in NODES}, 30)
    finally:
        for proc in procs.values():
            os.killpg(os.getpgid(proc.pid), signal.SIGTERM)
        deadline = time.monotonic() + 60
        for proc in procs.values():
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    assert all(proc.returncode == 0 for proc in procs.values())


def _env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as systemd's EnvironmentFile= reads them (no quoting here)."""
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), line
            found[key] = value
    return found


def _announced(db: Database) -> set[str]:
    """The nodes running the imap role now (each says so every pass)."""
    with db.read() as session:
        return set(session.scalars(select(Lease.key).where(Lease.kind == "imap:nodes")))
