"""The real check set's summary tables (``bench/real_checkset.py summary``), from a small
hand-made manifest and scores: no shared recordings needed."""

from __future__ import annotations

import csv
from pathlib import Path

from training.checkset_report import summary_tables

CRY, BABY = "noise/infant_cry/a.flac", "noise/esc50/crying_baby/b.flac"
CALLS = [
    # call_id, label, scenario, background, source_files, p_prank, p_ghost, flag
    ("e1", "emergency", "report", "background", f"{CRY};speech/x.flac", 0.96, 0.0, "likely_prank"),
    ("e2", "emergency", "report", "background", BABY, 0.05, 0.0, "none"),
    ("e3", "emergency", "report", "background", "noise/esc50/rain/c.flac", 0.01, 0.0, "none"),
    ("e4", "emergency", "short_report", "", "speech/y.flac", 0.02, 0.1, "none"),
    ("n1", "non_emergency", "inquiry", "", "speech/z.flac", 0.01, 0.0, "none"),
    ("p1", "prank", "giggle", "laughing", "noise/esc50/laughing/d.flac", 0.97, 0.0, "likely_prank"),
    ("p2", "prank", "insult", "", "speech/w.flac", 0.30, 0.0, "none"),
    ("g1", "ghost", "silent", "", "", 0.01, 0.99, "likely_ghost"),
    ("g2", "ghost", "pocket_dial", "rustle", "noise/friction0.wav", 0.01, 0.40, "none"),
]  # fmt: skip


def _write(tmp_path: Path) -> tuple[Path, Path]:
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["call_id", "label", "scenario", "channels", "background", "source_files"])
        for c in CALLS:
            w.writerow([c[0], c[1], c[2], "mono", c[3], c[4]])
    ev = tmp_path / "eval"
    ev.mkdir()
    with open(ev / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["call_id", "p_emergency", "p_non_emergency", "p_prank", "p_ghost", "flag"])
        for c in CALLS:
            rest = (1.0 - c[5] - c[6]) / 2
            w.writerow([c[0], rest, rest, c[5], c[6], c[7]])
    return manifest, ev


def test_emergency_calls_flagged_by_what_is_behind_the_caller(tmp_path: Path) -> None:
    text = summary_tables(*_write(tmp_path))
    lines = text.splitlines()
    head = "| behind an emergency caller | calls | flagged | median p_prank | flagged calls |"
    assert head in lines
    assert "| an infant crying | 2 | 1 | 0.505 | e1 (likely_prank) |" in lines
    assert "| other sound | 1 | 0 | 0.010 | none |" in lines
    assert "| nothing | 1 | 0 | 0.020 | none |" in lines
    assert not any(line.startswith("| a siren") for line in lines)


def test_whole_call_row_counts_each_class(tmp_path: Path) -> None:
    text = summary_tables(*_write(tmp_path))
    whole = next(line for line in text.splitlines() if line.startswith("| whole |"))
    cells = [c.strip() for c in whole.strip("|").split("|")]
    assert cells[3] == "25.0% (1/4)"  # emergency flagged
    assert cells[5] == "50.0% (1/2)" and cells[6] == "50.0% (1/2)"  # prank, ghost
