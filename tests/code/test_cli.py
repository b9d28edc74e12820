"""The CLI surface: help, the demo (the README's main job) and error reporting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from callsift import app

runner = CliRunner()


def test_help_lists_every_stage() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("simulate", "validate", "summarize", "features", "demo"):
        assert command in result.output
    assert "never drops" in result.output


def test_demo_runs_twice_in_the_same_folder(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    for _ in range(2):
        result = runner.invoke(app, ["demo", "--out", str(out), "--calls", "6"])
        assert result.exit_code == 0, result.output
        assert "(valid)" in result.output
    assert len(list((out / "audio").iterdir())) == 6


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["demo", "--out", str(out), "--calls", "4"])
    assert result.exit_code != 0
    assert (out / "notes.txt").read_text() == "keep me"


def test_errors_are_one_clear_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from callsift import main; main()",
            "simulate",
            "--preset",
            "nowhere",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown preset 'nowhere'")
    assert "Traceback" not in proc.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-c",
            "from callsift import main; main()",
            "validate",
            str(tmp_path / "none.csv"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
