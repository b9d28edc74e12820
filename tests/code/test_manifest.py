"""The manifest contract of docs/data-format.md and `callsift validate`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from callsift import app
from classifier.errors import InvalidManifestError
from classifier.manifest import REQUIRED_COLUMNS, load_manifest, validate_manifest, write_manifest

runner = CliRunner()


def _tone(seconds: float = 1.0, sr: int = 8000, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32)
    return np.stack([x, x], axis=1) if channels == 2 else x


def _good_rows(tmp: Path, n: int = 3) -> list[dict[str, str]]:
    (tmp / "audio").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        rel = f"audio/c{i}.wav"
        sf.write(tmp / rel, _tone(), 8000, subtype="ULAW")
        rows.append(
            {
                "call_id": f"c{i}",
                "caller_id": ["+6281234567890", "simless:356938035643809", ""][i % 3],
                "started_at": f"2025-06-0{i + 1}T19:04:11+08:00",
                "duration_s": "1.0",
                "audio_path": rel,
                "label": ["emergency", "prank", ""][i % 3],
                "zone": "kendari-barat",
            }
        )
    return rows


def _write(tmp: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp / "manifest.csv"
    columns = list(rows[0].keys())
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def test_valid_manifest_has_no_problems_and_keeps_metadata(tmp_path: Path) -> None:
    path = _write(tmp_path, _good_rows(tmp_path))
    assert validate_manifest(path) == []
    frame = load_manifest(path, check_audio=True)
    assert list(frame["call_id"]) == ["c0", "c1", "c2"]
    assert list(frame["zone"]) == ["kendari-barat"] * 3
    assert list(frame["caller_channel"]) == ["mix"] * 3
    assert frame["started_at_utc"].iloc[0].hour == 11  # 19:04 at +08:00
    assert set(frame["utc_offset_s"]) == {8 * 3600}
    assert Path(frame["audio_file"].iloc[0]).is_absolute()


@pytest.mark.parametrize(
    ("column", "value", "needle"),
    [
        ("started_at", "2025-06-01 19:04:11", "no UTC offset"),
        ("started_at", "yesterday", "not ISO 8601"),
        ("label", "hoax", "unknown label 'hoax'"),
        ("duration_s", "-3", "expected 0 or more"),
        ("duration_s", "abc", "expected a number"),
        ("caller_id", "0812345", "not an E.164 number"),
        ("audio_path", "audio/missing.wav", "does not exist"),
        ("caller_channel", "left", "stereo"),
        ("caller_channel", "centre", "unknown caller_channel"),
    ],
)
def test_each_bad_field_is_reported_with_its_line(
    tmp_path: Path, column: str, value: str, needle: str
) -> None:
    rows = _good_rows(tmp_path)
    for r in rows:
        r.setdefault("caller_channel", "mix")
    rows[1][column] = value
    problems = validate_manifest(_write(tmp_path, rows))
    assert len(problems) == 1, problems
    assert problems[0].line == 3
    assert problems[0].column == column
    assert needle in problems[0].message
    assert problems[0].call_id == "c1"


def test_duplicate_call_id_names_first_line(tmp_path: Path) -> None:
    rows = _good_rows(tmp_path)
    rows[2]["call_id"] = "c0"
    problems = validate_manifest(_write(tmp_path, rows))
    assert [(p.line, p.column) for p in problems] == [(4, "call_id")]
    assert "first seen on line 2" in problems[0].message


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    rows = _good_rows(tmp_path, n=6)
    rows[0]["label"] = "x"
    rows[3]["started_at"] = "bad"
    rows[5]["duration_s"] = "-1"
    problems = validate_manifest(_write(tmp_path, rows))
    assert sorted(p.line for p in problems) == [2, 5, 7]


def test_unreadable_and_corrupt_audio(tmp_path: Path) -> None:
    rows = _good_rows(tmp_path)
    (tmp_path / "audio" / "c1.wav").write_bytes(b"RIFF\x00\x00not really a wav file")
    (tmp_path / "audio" / "c2.wav").write_text("hello")
    problems = validate_manifest(_write(tmp_path, rows))
    assert [p.line for p in problems] == [3, 4]
    assert all("unreadable or not audio" in p.message for p in problems)


def test_low_sample_rate_is_refused(tmp_path: Path) -> None:
    rows = _good_rows(tmp_path)
    sf.write(tmp_path / "audio" / "c0.wav", _tone(sr=4000), 4000)
    problems = validate_manifest(_write(tmp_path, rows))
    assert len(problems) == 1 and "expected at least 8000 Hz" in problems[0].message


def test_stereo_with_caller_channel_is_valid(tmp_path: Path) -> None:
    rows = _good_rows(tmp_path)
    sf.write(tmp_path / "audio" / "c0.wav", _tone(channels=2), 16000, subtype="PCM_24")
    for r in rows:
        r["caller_channel"] = "mix"
    rows[0]["caller_channel"] = "right"
    assert validate_manifest(_write(tmp_path, rows)) == []


def test_missing_columns_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("call_id,caller_id\nc1,\n")
    problems = validate_manifest(path)
    assert len(problems) == 1 and "missing required column(s) started_at" in problems[0].message
    path.write_text("")
    assert "empty" in validate_manifest(path)[0].message
    path.write_text(",".join(REQUIRED_COLUMNS) + "\n")
    assert "no calls" in validate_manifest(path)[0].message
    with pytest.raises(InvalidManifestError, match="does not exist"):
        validate_manifest(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x01garbage\x80")
    with pytest.raises(InvalidManifestError, match="not UTF-8"):
        validate_manifest(tmp_path / "bin.csv")


def test_load_manifest_refuses_invalid_with_every_problem(tmp_path: Path) -> None:
    rows = _good_rows(tmp_path)
    rows[0]["label"] = "x"
    rows[2]["started_at"] = "bad"
    with pytest.raises(InvalidManifestError, match="2 problem") as info:
        load_manifest(_write(tmp_path, rows))
    assert "line 2" in str(info.value) and "line 4" in str(info.value)


def test_write_manifest_round_trips(tmp_path: Path) -> None:
    rows = _good_rows(tmp_path)
    path = write_manifest(rows, tmp_path / "out.csv", extra_columns=["zone"])
    header = path.read_text().splitlines()[0].split(",")
    assert header[: len(REQUIRED_COLUMNS)] == list(REQUIRED_COLUMNS)
    assert validate_manifest(path) == []


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    rows = _good_rows(tmp_path)
    path = _write(tmp_path, rows)
    ok = runner.invoke(app, ["validate", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "valid" in ok.output
    rows[1]["label"] = "joke"
    bad = runner.invoke(app, ["validate", str(_write(tmp_path, rows))])
    assert bad.exit_code == 1
    assert "line 3" in bad.output and "unknown label 'joke'" in bad.output


def test_a_manifest_row_and_an_api_call_share_one_call_row_model(tmp_path: Path) -> None:
    """One rule, one place: a call_id the store could not keep is refused by the manifest
    with the store's own message, and the API's call is the same model narrowed."""
    from api.schemas import CallIn
    from classifier.callrow import CallRow, ManifestRow, call_id_problem

    assert issubclass(CallIn, CallRow) and issubclass(ManifestRow, CallRow)
    rows = _good_rows(tmp_path)
    rows[1]["call_id"] = "c" * 129
    problems = validate_manifest(_write(tmp_path, rows))
    assert [(p.line, p.column) for p in problems] == [(3, "call_id")]
    assert problems[0].message == call_id_problem("c" * 129)
    # A pseudonym is a stored caller (manifest, export) but not what a phone system sends.
    row = {"call_id": "c9", "caller_id": "anon:0123456789abcdef"}
    row["started_at"] = "2025-06-03T19:04:11+08:00"
    assert CallRow.model_validate(row).caller_id == row["caller_id"]
    with pytest.raises(ValueError, match=r"not an E\.164 number"):
        CallIn.model_validate(row)
