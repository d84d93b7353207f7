"""Running the `gateway` command in-process against a config file in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from tests.helpers.cli import Result, Run


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "config.toml"
    # [dropbox] last: tests append more of its keys
    path.write_text(
        f'[paths]\nvar_dir = "var"\n[database]\nurl = "{database_url}"\n'
        '[web]\nlisten = "127.0.0.1:0"\n[submission]\nlisten = "127.0.0.1:0"\n'
        '[dropbox]\nlisten = "127.0.0.1:0"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def gateway(config_file: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*args: str) -> Result:
        code = main(["--config", str(config_file), *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def initialized(gateway: Run) -> Run:
    assert gateway("init").code == 0
    assert (
        gateway("user", "add", "bob@acme.com", "--name", "Bob", "--alias", "bob@acme.org").code == 0
    )
    return gateway
