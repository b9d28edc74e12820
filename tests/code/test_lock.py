"""requirements.lock matches pyproject.toml, and a lock that does not is refused (issue 17)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _copy(tmp_path: Path) -> Path:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "check_lock.py", tmp_path / ".ci")
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / ".ci" / "check_lock.py")], capture_output=True, text=True
    )


def test_the_committed_lock_matches_pyproject() -> None:
    out = _check(ROOT)
    assert out.returncode == 0, out.stderr


def test_every_locked_requirement_is_pinned_with_hashes() -> None:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith((" ", "#"))]
    assert len(pins) > 50
    for pin in pins:
        assert "==" in pin and pin.rstrip().endswith("\\"), pin  # hashes follow
    assert any(line.strip().startswith("--hash=sha256:") for line in lines)
    for name in ("numpy==", "scikit-learn==", "fastapi==", "setuptools=="):
        assert any(p.startswith(name) for p in pins), name


def test_a_lock_that_no_longer_matches_is_refused_with_the_command(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    pyproject = root / "pyproject.toml"
    lock_before = (root / "requirements.lock").read_bytes()
    pyproject.write_text(
        pyproject.read_text().replace('"numpy>=1.26,<3",', '"numpy>=1.26,<3",\n    "six",')
    )
    out = _check(root)
    assert out.returncode == 1
    assert "does not match pyproject.toml" in out.stderr and "make lock" in out.stderr
    assert (root / "requirements.lock").read_bytes() == lock_before  # nothing changed


def test_a_missing_lock_is_named(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "requirements.lock").unlink()
    out = _check(root)
    assert out.returncode == 1 and "requirements.lock is missing" in out.stderr
