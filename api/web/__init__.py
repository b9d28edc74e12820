"""The web console: static HTML, CSS and JavaScript served at ``/console/``.

No build step: the files in ``static/`` are what the browser runs. The console talks to
the same JSON API as any client, with the API key the user pastes at login.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

STATIC_DIR = Path(__file__).parent / "static"

#: The only files served; anything else is 404 (no directory listing, no traversal).
_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "events.js": "text/javascript; charset=utf-8",
    "format.js": "text/javascript; charset=utf-8",
    "numbers.js": "text/javascript; charset=utf-8",
    "report.js": "text/javascript; charset=utf-8",
    "shortcuts.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "polish.css": "text/css; charset=utf-8",
}
_HEADERS = {
    # Everything comes from this origin; recordings and plots are blob: URLs made by app.js.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    """The console is the service's front page."""
    return RedirectResponse("/console/", status_code=307)


@router.get("/console")
async def console_no_slash() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/")
async def console_index() -> FileResponse:
    """The console's single page."""
    return _file("index.html")


@router.get("/console/{name}")
async def console_file(name: str) -> FileResponse:
    """One of the console's static files."""
    return _file(name)


def _file(name: str) -> FileResponse:
    media = _FILES.get(name)
    if media is None:
        raise HTTPException(status_code=404, detail=f"no console file {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media, headers=_HEADERS)
