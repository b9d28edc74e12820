"""The README's screenshots, taken from the demo (issue 21.5): ``callsift demo --serve``
replays three weeks of a simulated Kendari-like centre (in Asia/Makassar, Kendari's zone)
through the API, then Debian's Chromium photographs the call-taker view, the supervisor's
queue with a number's last calls open, the dashboard and the weekly report.

    make screenshots            # or: .venv/bin/python bench/screenshots.py

Writes docs/screenshots/{call_taker,supervisor,dashboard,report}.png. Takes the
demo's time (about 2 to 4 minutes on 2 cores, more on a first run that simulates the
corpus); the demo folder and its corpus are made in a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.serve, run as a script from anywhere

from tests.serve import callsift_demo  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ZONE = "Asia/Makassar"
WAIT_MS = 30_000


def _login(browser: Any, url: str, key: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    page = context.new_page()
    page.goto(f"{url}/console/")
    page.fill("#key", key)
    page.click("#login-form button[type=submit]")
    page.locator("#nav").wait_for(timeout=WAIT_MS)
    return page


def take(url: str, keys: dict[str, str], out: Path) -> list[Path]:
    """Photograph the console views of the running demo at ``url`` into ``out``."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            # Call-taker: the live list from the top; scrolled to the newest flagged call
            # only when none is on the first screen.
            page = _login(browser, url, keys["call_taker"])
            page.locator("#calls li.call").first.wait_for(timeout=WAIT_MS)
            flagged = page.locator("#calls li.flag-likely, #calls li.flag-possible")
            box = flagged.first.bounding_box() if flagged.count() else None
            if box is not None and box["y"] > 500:
                flagged.first.evaluate("(li) => li.scrollIntoView({block: 'start'})")
                page.evaluate("() => window.scrollBy(0, -60)")  # below the sticky advisory
            shots.append(out / "call_taker.png")
            page.screenshot(path=str(shots[-1]))
            page.context.close()

            # Supervisor: the queue, the riskiest number's last calls open.
            page = _login(browser, url, keys["supervisor"])
            rows = page.locator("#queue tbody tr")
            rows.first.wait_for(timeout=WAIT_MS)
            rows.first.locator("button.last-calls").click()
            page.locator("#number-panel tbody tr").first.wait_for(timeout=WAIT_MS)
            shots.append(out / "supervisor.png")
            page.screenshot(path=str(shots[-1]))
            page.keyboard.press("Escape")

            page.click("#nav button[data-view=dashboard]")
            for name in ("calls_per_day", "share_over_time", "heatmap", "incident_types"):
                page.locator(f"#plot-{name} img").wait_for(timeout=WAIT_MS)
            shots.append(out / "dashboard.png")
            page.screenshot(path=str(shots[-1]))

            # The report of last week (a whole week of the replay), in the centre's zone.
            page.click("#nav button[data-view=report]")
            week = (datetime.now(ZoneInfo(ZONE)) - timedelta(days=7)).strftime("%G-W%V")
            page.fill("#report-week", week)
            page.click("#report-form button[type=submit]")
            page.wait_for_function(
                "(w) => (document.querySelector('#report-frame').dataset.ready || '')"
                ".startsWith(w + '/')",
                arg=week,
                timeout=WAIT_MS,
            )
            shots.append(out / "report.png")
            page.screenshot(path=str(shots[-1]))
            page.context.close()
        finally:
            browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNG files")
    parser.add_argument("--calls", type=int, default=None, help="demo calls (demo's default)")
    args = parser.parse_args()
    demo_args = ["--live-pause", "600"]
    if args.calls is not None:
        demo_args += ["--calls", str(args.calls)]
    with tempfile.TemporaryDirectory(prefix="callsift-shots-") as tmp:
        root = Path(tmp)
        env = {"CALLSIFT_TIMEZONE": ZONE}
        with callsift_demo(root / "demo", root / "demo.log", demo_args, env, timeout_s=1800) as (
            url,
            keys,
            ready,
        ):
            print(ready)
            for path in take(url, keys, args.out):
                print(f"wrote {path}")


if __name__ == "__main__":
    main()
