"""Check that requirements.lock was made from pyproject.toml as it is now.

`make lock` records a digest of what pyproject.toml asks for (the build requirements,
the Python range, the dependencies and the dev extra) in the lock's first line; this
script recomputes it. Run by `make` before every install: a lock that no longer matches
stops the install with the command that refreshes it. `--write` records the digest
(used by `make lock` after pip-compile). Standard library only: it runs before any
environment exists.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PREFIX = "# pyproject-sha256: "


def digest() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    asked = {
        "build": project["build-system"]["requires"],
        "python": project["project"]["requires-python"],
        "dependencies": project["project"]["dependencies"],
        "dev": project["project"]["optional-dependencies"]["dev"],
    }
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


def main() -> int:
    if not LOCK.is_file():
        print(f"error: {LOCK.name} is missing; run `make lock` to create it", file=sys.stderr)
        return 1
    lines = LOCK.read_text().splitlines(keepends=True)
    kept = lines[1:] if lines and lines[0].startswith(PREFIX) else lines
    if sys.argv[1:] == ["--write"]:
        LOCK.write_text(PREFIX + digest() + "\n" + "".join(kept))
        return 0
    recorded = lines[0][len(PREFIX) :].strip() if lines and lines[0].startswith(PREFIX) else None
    if recorded != digest():
        print(
            f"error: {LOCK.name} does not match pyproject.toml (its dependencies changed since "
            "the lock was made); run `make lock` to refresh it, then commit both files",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
