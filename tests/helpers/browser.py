"""Debian's Chromium under Playwright for the page tests: the launch, axe-core's
accessibility check, and where screenshots are kept.

axe-core's one file comes from node_modules (package.json; scripts/venv runs npm ci)
and is injected into the page under test; that needs a context made with
bypass_csp=True, since the pages' CSP rightly refuses scripts they did not serve.
Screenshots go to the artifacts folder of the test run: $GATEWAY_TEST_ARTIFACTS, or
artifacts/ at the top of the checkout.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (375, 1440)


def needed(what: str, install: str) -> None:
    """Fail under CI (which installs everything), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: .ci/run installs it ({install})")
    pytest.skip(f"{what} is not installed ({install})")


@contextmanager
def chromium() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        needed("Chromium", "apt-get install chromium")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def artifacts(*parts: str) -> Path:
    base = Path(os.environ.get("GATEWAY_TEST_ARTIFACTS") or ROOT / "artifacts")
    folder = base.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def axe_problems(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    if not AXE.exists():
        needed("axe-core", "npm ci")
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))
            }));
        }"""
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {', '.join(v['nodes'])}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def overflows(page: Any) -> bool:
    """Whether the page scrolls sideways (it should not, at any width)."""
    return bool(page.evaluate("document.documentElement.scrollWidth > window.innerWidth"))
