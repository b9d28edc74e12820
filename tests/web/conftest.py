"""A real callsift server and Debian's Chromium for the browser tests.

Fixtures:

- ``server``: module-scoped; ``callsift serve`` in a subprocess on a free port with a
  temporary SQLite database and data folder, plus one key per role and an expired key.
- ``browser``: module-scoped headless Chromium (``/usr/bin/chromium``) through Playwright.
- ``artifacts``: the folder for screenshots (tests/web/artifacts, gitignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve import callsift_serve

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"


@dataclass
class Server:
    """A running service: its URL and one API key per role."""

    url: str
    keys: dict[str, str]
    expired_key: str
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.keys[role]}, timeout=30.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from api.store import Store

    root = tmp_path_factory.mktemp("web")
    db_url = f"sqlite:///{root / 'callsift.db'}"
    data_dir = root / "data"
    store = Store(db_url, data_dir=data_dir)
    try:
        store.upgrade()
        keys = {
            role: store.create_key(role=role, name=f"{role} tester", actor="cli")[0]
            for role in ("call_taker", "supervisor", "data_scientist", "admin")
        }
        # Created valid, so the store accepts it, then past its end by the time it is used.
        expired, _ = store.create_key(
            role="supervisor",
            name="expired tester",
            actor="cli",
            expires_at=datetime.now(UTC) + timedelta(seconds=1),
        )
    finally:
        store.dispose()
    env = {
        "CALLSIFT_DATABASE_URL": db_url,
        "CALLSIFT_DATA_DIR": str(data_dir),
        "CALLSIFT_KEY_CACHE_S": "0",
    }
    with callsift_serve(root, env) as url:
        yield Server(url=url, keys=keys, expired_key=expired, log=root / "server.log")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package. "
            "`make test` installs it (apt-get install chromium)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def save_screen(page: Any, name: str) -> Path:
    """Screenshot ``page`` to the artefacts (the README's come from the demo:
    ``make screenshots``, bench/screenshots.py)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
