"""The layering: the core imports no role, roles do not import
each other, and one registry names every role and every command."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway import registry
from gateway.cli import build_parser
from gateway.config import Config
from gateway.role import RoleContext
from gateway.tls import ensure_self_signed
from gateway.vault import ensure_key_file

ROOT = Path(__file__).resolve().parent.parent
ROLE_PACKAGES = ("inbound", "outbound", "admin")


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path: Path) -> None:
    # The same contracts over a copy of the tree in which the core reaches up once.
    for package in ("gateway", *ROLE_PACKAGES):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "gateway" / "core.py").write_text("import outbound.delivery\n")
    (tmp_path / "outbound" / "delivery.py").write_text("")
    config = (ROOT / "pyproject.toml").read_text()
    contracts = config[config.index("[tool.importlinter]") :]
    (tmp_path / "pyproject.toml").write_text(contracts)
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gateway.core -> outbound.delivery" in done.stdout


def test_only_the_registry_names_the_role_packages_in_the_core() -> None:
    """Dotted names resolved at run time are imports import-linter cannot see: in
    gateway/ only the registry may hold them."""
    named = []
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        if path.name == "registry.py" and path.parent.name == "gateway":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _names_a_role_module(node.value)
            ):
                named.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
            if isinstance(node, ast.Attribute) and node.attr == "import_module":
                named.append(f"{path.relative_to(ROOT)}:{node.lineno}: import_module")
    assert named == []


def _names_a_role_module(text: str) -> bool:
    name = text.split(":", 1)[0]
    if "." not in name and ":" not in text:
        return False  # a bare word ("admin", "outbound"): a setting, not a module
    if name.split(".", 1)[0] not in ROLE_PACKAGES or not name.replace(".", "").isidentifier():
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("entry", registry.ROLES, ids=lambda e: e.name)
def test_every_role_is_built_by_its_factory(entry: registry.RoleEntry, config: Config) -> None:
    build = registry.factory(entry.name)
    assert callable(build)
    hints = inspect.signature(build).parameters
    assert list(hints) == ["ctx"]
    assert entry.placement in (registry.LISTENING, registry.BACKGROUND, registry.OWN_PROCESS)


def test_roles_are_built_from_one_context_and_signal_each_other(db, config: Config) -> None:
    ensure_self_signed(config.tls_cert_file, config.tls_key_file, "localhost")
    ensure_key_file(config.secret_key_file)
    ctx = RoleContext(db, config)
    roles = registry.build_roles(["pipeline", "submission", "delivery"], ctx)
    assert list(roles) == ["pipeline", "submission", "delivery"]
    delivery, pipeline = roles["delivery"], roles["pipeline"]
    ctx.queued()  # what submission says once a message is committed
    assert delivery.wake_event.is_set()  # type: ignore[attr-defined]
    ctx.stored()
    assert pipeline.wake_event.is_set()  # type: ignore[attr-defined]


def test_a_signal_without_a_listener_here_goes_to_the_supervisor(db, config: Config) -> None:
    ensure_self_signed(config.tls_cert_file, config.tls_key_file, "localhost")
    sent: list[str] = []
    ctx = RoleContext(db, config)
    ctx.queued.remote = lambda: sent.append("queued")
    registry.build_roles(["submission"], ctx)
    ctx.queued()
    assert sent == ["queued"]


def test_every_command_module_adds_its_verbs() -> None:
    parser = build_parser()
    verbs: Any = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for verb in ("init", "serve", "user", "contacts", "messages", "mailbox", "quarantine"):
        assert verb in verbs
    for verb in ("dkim", "queue", "token"):
        assert verb in verbs
    user_verbs = verbs["user"]._subparsers._group_actions[0].choices
    assert "route" in user_verbs  # added by outbound.cli to the core's `user`
