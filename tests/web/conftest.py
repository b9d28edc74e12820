"""A real callsift server and Debian's Chromium for the browser tests.

Fixtures:

- ``server``: module-scoped; ``callsift serve`` in a subprocess on a free port with a
  temporary SQLite database and data folder, plus one key per role and an expired key.
- ``browser``: module-scoped headless Chromium (``/usr/bin/chromium``) through Playwright.
- ``artifacts``: the folder for screenshots (tests/web/artifacts, gitignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
START_TIMEOUT_S = 90.0


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = _free_port()
    env = {
        **os.environ,
        "CALLSIFT_DATABASE_URL": db_url,
        "CALLSIFT_DATA_DIR": str(data_dir),
        "CALLSIFT_LOG_LEVEL": "WARNING",
        "CALLSIFT_KEY_CACHE_S": "0",
    }
    env.pop("DATABASE_URL", None)
    callsift = Path(sys.executable).with_name("callsift")
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(callsift), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"callsift serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"callsift serve not ready in {START_TIMEOUT_S} s:\n{log.read_text()}")
            time.sleep(0.25)
        yield Server(url=url, keys=keys, expired_key=expired, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def save_screen(page: Any, name: str, *, readme: bool = False) -> Path:
    """Screenshot ``page`` to the artefacts.

    ``readme`` screens are also copied to docs/screenshots, but only when
    ``CALLSIFT_UPDATE_SCREENSHOTS=1``: a test run must not change tracked files.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if readme and os.environ.get("CALLSIFT_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")
    return path
