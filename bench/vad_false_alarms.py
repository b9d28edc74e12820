"""False alarms of callsift's speech detector on every real sound in ``shared/data/noise``.

Usage (from the project root)::

    .venv/bin/python bench/vad_false_alarms.py [--data ../shared/data] [--band phone|none|both]
        [--json out.json] [--png docs/img/vad_false_alarms.png] [--quick]

None of these recordings is a caller talking to the call-taker, so every 10 ms frame the
product counts as speech is a false alarm of "speech on the line". Each file (ESC-50
classes, street recordings, music, cafe / fridge / traffic, infant cries, and the phone
handling clips, room and digital silence, kitchen dishes) is loaded at 8 kHz mono
(soundfile, then ``scipy.signal.resample_poly`` as ``classifier.audio`` does), optionally
through a telephone band-pass (300-3400 Hz, 8th-order Butterworth, causal, as a line
would), at two levels: as recorded and 20 dB quieter (a sound behind the caller). It then
goes through the product's own path, ``classifier.features.channel_features`` (dither,
shared STFT, ``speech_and_whisper_from_stft``), and two shares are kept per file:

- ``voiced``: the feature ``speech_ratio`` (voiced speech, what "caller speaks" and
  "speech on the line" are read from);
- ``with whisper``: ``speech_ratio + whisper_ratio`` (voiced or whisper-like frames).

Per class (ESC-50 class, folder or file group): files, seconds, the mean over files and
the largest file's share, and how many files have any voiced frame. Classes are tagged by
what they are: ``voice`` (human voices by nature: laughing, coughing, crying...),
``voice?`` (may hold voices, not checked by listening), ``animal``, ``music``, ``sound``
(everything else). Figures are for these recordings only; ESC-50 clips are 5 s, the
handling clips under 1.5 s, shorter than the detector's 1.5 s floor window.

Prints ``SKIP ...`` and exits 0 when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

# One core, as a serving worker runs (before numpy starts its thread pools).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy.signal import butter, resample_poly, sosfilt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier.features import channel_features  # noqa: E402

SR = 8000
GAINS_DB = (0.0, -20.0)
PHONE_BAND_HZ = (300.0, 3400.0)

# ESC-50 classes that are human voice sounds; animal calls are kept apart (periodic too).
_VOICE_ESC50 = {"laughing", "crying_baby", "coughing", "sneezing", "breathing", "snoring"}
_ANIMAL_ESC50 = {
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "chirping_birds", "crickets",
}  # fmt: skip
# street_berlin: one group per recording, named from its .yml "what" field.
_STREET = {
    "35EF0BF2": ("street_fireworks", "sound"),
    "5B6DDD39": ("street_children_ice_rink", "voice"),  # children screaming on the ice
    "64710754": ("street_market_bells", "voice?"),  # market taken down, town-hall bells
    "A7B4879B": ("street_windy_passers_by", "voice?"),  # wind, people passing, cars, crows
}
_MISC = {"cafe": "voice", "fridge": "sound", "traffic": "sound"}


def find_data(arg: str | None) -> Path | None:
    cands = (
        [arg]
        if arg
        else [os.environ.get("CALLSIFT_SHARED_DATA"), str(ROOT.parent / "shared" / "data")]
    )
    for c in cands:
        if c and (Path(c) / "noise").is_dir():
            return Path(c)
    return None


def group_of(path: Path, noise: Path) -> tuple[str, str]:
    """(class or group name, kind) of one noise file."""
    rel = path.relative_to(noise)
    top = rel.parts[0]
    name = path.stem.lower()
    if top == "esc50":
        cls = rel.parts[1]
        kind = "voice" if cls in _VOICE_ESC50 else "animal" if cls in _ANIMAL_ESC50 else "sound"
        return cls, kind
    if top == "infant_cry":
        return "infant_cry", "voice"
    if top == "street_berlin":
        return _STREET.get(path.stem[:8], (f"street_{path.stem[:8]}", "voice?"))
    if top == "music":
        return "music", "music"
    if top == "misc":
        return name, _MISC.get(name, "sound")
    # Top-level files: phone handling, silences, kitchen.
    if "rub" in name:
        return "handling_rub", "sound"
    if "tap" in name:
        return "handling_tap", "sound"
    if "friction" in name:
        return "handling_friction", "sound"
    if name == "doing_the_dishes":
        return "dishes", "sound"
    if name in ("silence", "digital_silence"):
        return ("room_silence" if name == "silence" else "digital_silence"), "sound"
    return name, "sound"


def load8k(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        g = gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g)
    return np.ascontiguousarray(x, dtype=np.float32)


def phone_band(x: np.ndarray) -> np.ndarray:
    sos = butter(4, PHONE_BAND_HZ, btype="bandpass", fs=SR, output="sos")
    return np.asarray(sosfilt(sos, x), dtype=np.float32)


@dataclass
class FileResult:
    path: str
    group: str
    kind: str
    seconds: float
    # condition -> (voiced share, voiced-or-whisper share)
    shares: dict[str, tuple[float, float]] = field(default_factory=dict)


def measure(y: np.ndarray) -> tuple[float, float]:
    feats, mask = channel_features(y, sr=SR)
    voiced = float(feats["speech_ratio"])
    assert abs(voiced - float(mask.mean())) < 1e-9
    return voiced, voiced + float(feats["whisper_ratio"])


def cond_name(band: str, gain_db: float) -> str:
    return f"{band}@{gain_db:+.0f}dB"


def summarise(results: list[FileResult], conds: list[str]) -> list[dict]:
    groups: dict[str, list[FileResult]] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r)
    rows = []
    for g, rs in groups.items():
        row: dict = {
            "group": g,
            "kind": rs[0].kind,
            "files": len(rs),
            "seconds": float(sum(r.seconds for r in rs)),
        }
        for c in conds:
            v = np.array([r.shares[c][0] for r in rs])
            w = np.array([r.shares[c][1] for r in rs])
            row[c] = {
                "voiced_mean": float(v.mean()),
                "voiced_max": float(v.max()),
                "with_whisper_mean": float(w.mean()),
                "with_whisper_max": float(w.max()),
                "files_with_voiced": int(np.count_nonzero(v > 0)),
                "voiced_pooled": float(
                    sum(r.shares[c][0] * r.seconds for r in rs) / sum(r.seconds for r in rs)
                ),
            }
        rows.append(row)
    return rows


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown(rows: list[dict], main: str, quiet: str, other: str | None) -> str:
    head = (
        "| # | class | kind | files | s | voiced mean % | voiced max % | files with voiced "
        "| +whisper mean % | +whisper max % | voiced mean % at -20 dB | +whisper mean % at -20 dB"
    )
    sep = "|---|---|---|---|---|---|---|---|---|---|---|---"
    if other:
        head += " | voiced mean % without band-pass"
        sep += "|---"
    lines = [head + " |", sep + "|"]
    for i, r in enumerate(rows, 1):
        m, q = r[main], r[quiet]
        cells = [
            str(i),
            r["group"],
            r["kind"],
            str(r["files"]),
            f"{r['seconds']:.0f}",
            pct(m["voiced_mean"]),
            pct(m["voiced_max"]),
            f"{m['files_with_voiced']}/{r['files']}",
            pct(m["with_whisper_mean"]),
            pct(m["with_whisper_max"]),
            pct(q["voiced_mean"]),
            pct(q["with_whisper_mean"]),
        ]
        if other:
            cells.append(pct(r[other]["voiced_mean"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kind_summary(rows: list[dict], results: list[FileResult], c: str) -> str:
    out = []
    for kind in ("voice", "voice?", "animal", "music", "sound"):
        rs = [r for r in results if r.kind == kind]
        if not rs:
            continue
        v = np.array([r.shares[c][0] for r in rs])
        w = np.array([r.shares[c][1] for r in rs])
        secs = np.array([r.seconds for r in rs])
        out.append(
            f"{kind:7s} {len(rs):4d} files {secs.sum():7.0f} s  voiced: mean over files "
            f"{pct(v.mean())} %, pooled over time {pct((v * secs).sum() / secs.sum())} %, "
            f"files with any {np.count_nonzero(v > 0)}; +whisper mean {pct(w.mean())} %"
        )
    return "\n".join(out)


def plot(rows: list[dict], main: str, quiet: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "voice": "#d62728",
        "voice?": "#ff9896",
        "animal": "#2ca02c",
        "music": "#9467bd",
        "sound": "#1f77b4",
    }
    n = len(rows)
    fig, ax = plt.subplots(figsize=(9, 0.22 * n + 1.6))
    ypos = np.arange(n)
    w = [100 * r[main]["with_whisper_mean"] for r in rows]
    v = [100 * r[main]["voiced_mean"] for r in rows]
    q = [100 * r[quiet]["voiced_mean"] for r in rows]
    ax.barh(ypos, w, color="#cccccc", label="voiced or whisper (mean over files)")
    ax.barh(ypos, v, color=[colours[r["kind"]] for r in rows])
    ax.plot(q, ypos, "k|", markersize=7, label="voiced, 20 dB quieter")
    ax.set_yticks(ypos, [f"{r['group']} ({r['kind']})" for r in rows], fontsize=7)
    ax.set_ylim(n - 0.5, -0.5)  # worst on top, no margins
    ax.set_xlabel("% of 10 ms frames the detector calls speech (no caller in any file)")
    ax.set_title(f"callsift VAD false alarms on real sounds ({main})", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    for kind, col in colours.items():
        handles.append(plt.Rectangle((0, 0), 1, 1, color=col))
        labels.append(f"voiced (speech_ratio), {kind}")
    ax.legend(handles, labels, fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(0, 100)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="shared data folder (with noise/)")
    ap.add_argument(
        "--band",
        choices=("phone", "none", "both"),
        default="both",
        help="telephone band-pass 300-3400 Hz, none, or both (table on the band-passed)",
    )
    ap.add_argument("--json", default=None, help="write every per-file share here")
    ap.add_argument("--png", default=None, help="bar chart of the per-class means")
    ap.add_argument("--quick", action="store_true", help="first 2 files of each folder only")
    ap.add_argument(
        "--abs-floor-db",
        type=float,
        default=None,
        help="diagnostic only: replace the detector's absolute floor (classifier.vad."
        "_ABS_FLOOR_DB, -80 dB band energy) in this process, e.g. -200 to see how much of "
        "the change at -20 dB it causes",
    )
    args = ap.parse_args(argv)
    if args.abs_floor_db is not None:
        from classifier.vad import detector as vad

        print(f"DIAGNOSTIC: vad.detector._ABS_FLOOR_DB = {args.abs_floor_db} (not the product)")
        vad._ABS_FLOOR_DB = args.abs_floor_db

    data = find_data(args.data)
    if data is None:
        print(
            "SKIP: shared data folder not found (pass --data or set CALLSIFT_SHARED_DATA; "
            "default ../shared/data)"
        )
        return 0
    noise = data / "noise"
    files = sorted(p for p in noise.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    if args.quick:
        per_dir: dict[Path, int] = {}
        keep = []
        for p in files:
            per_dir[p.parent] = per_dir.get(p.parent, 0) + 1
            if per_dir[p.parent] <= 2:
                keep.append(p)
        files = keep
    bands = ["phone", "none"] if args.band == "both" else [args.band]
    conds = [cond_name(b, g) for b in bands for g in GAINS_DB]

    t0 = time.perf_counter()
    results: list[FileResult] = []
    for p in files:
        g, kind = group_of(p, noise)
        y0 = load8k(p)
        r = FileResult(str(p.relative_to(noise)), g, kind, y0.size / SR)
        for b in bands:
            yb = phone_band(y0) if b == "phone" else y0
            for gain in GAINS_DB:
                y = (yb * np.float32(10 ** (gain / 20))).astype(np.float32)
                r.shares[cond_name(b, gain)] = measure(y)
        results.append(r)
    elapsed = time.perf_counter() - t0

    main_c, quiet_c = conds[0], conds[1]
    other_c = cond_name("none", 0.0) if args.band == "both" else None
    rows = summarise(results, conds)
    rows.sort(key=lambda r: (-r[main_c]["voiced_mean"], -r[main_c]["with_whisper_mean"]))

    total_s = sum(r.seconds for r in results)
    print(
        f"{len(results)} files, {total_s:.0f} s of audio, {len(rows)} classes, "
        f"conditions {', '.join(conds)}; {elapsed:.0f} s"
    )
    print(f"table: {main_c}, sorted by voiced mean; -20 dB column: {quiet_c}\n")
    print(markdown(rows, main_c, quiet_c, other_c))
    for c in conds:
        print(f"\nby kind, {c}:")
        print(kind_summary(rows, results, c))
    # Gain invariance: how far the -20 dB shares move, file by file.
    for b in bands:
        a, q = cond_name(b, GAINS_DB[0]), cond_name(b, GAINS_DB[1])
        dv = np.array([r.shares[q][0] - r.shares[a][0] for r in results])
        dw = np.array([r.shares[q][1] - r.shares[a][1] for r in results])
        print(
            f"\n{b}: -20 dB minus as recorded, per file: voiced mean {pct(dv.mean())} pts, "
            f"max |diff| {pct(np.abs(dv).max())} pts, files changed {np.count_nonzero(dv)}"
            f"/{dv.size} (> 5 pts: {np.count_nonzero(dv < -0.05)} down, "
            f"{np.count_nonzero(dv > 0.05)} up); +whisper mean {pct(dw.mean())} pts, max "
            f"|diff| {pct(np.abs(dw).max())} pts (> 5 pts: {np.count_nonzero(dw < -0.05)} down, "
            f"{np.count_nonzero(dw > 0.05)} up)"
        )
    music = [r for r in results if r.group == "music"]
    if music:
        print(f"\nmusic per track ({main_c}; {quiet_c}):")
        for r in sorted(music, key=lambda r: -r.shares[main_c][0]):
            (v, w), (vq, wq) = r.shares[main_c], r.shares[quiet_c]
            print(
                f"  {Path(r.path).stem[:60]:60s} {r.seconds:6.1f} s  voiced {pct(v):>5} %  "
                f"+whisper {pct(w):>5} %  | -20 dB {pct(vq):>5} / {pct(wq):>5} %"
            )
    if args.png:
        plot(rows, main_c, quiet_c, args.png)
        print(f"\nwrote {args.png}")
    if args.json:
        out = {
            "conditions": conds,
            "classes": rows,
            "files": [r.__dict__ for r in results],
            "seconds": elapsed,
        }
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
