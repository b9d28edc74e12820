"""What limits the prank flags on real recordings (issue 15, session 12).

    .venv/bin/python bench/prank_limits.py ceiling /tmp/rc15/manifest.csv=/tmp/eval15 ...
    .venv/bin/python bench/prank_limits.py laughter /tmp/rc15/manifest.csv=/tmp/f15.parquet ...
    .venv/bin/python bench/prank_limits.py laughter-loco
    .venv/bin/python bench/prank_limits.py cry-holdout
    .venv/bin/python bench/prank_limits.py shrill
    .venv/bin/python bench/prank_limits.py children
    .venv/bin/python bench/prank_limits.py turns /tmp/rc15/manifest.csv=/tmp/f15.parquet ...

``ceiling``: from ``callsift evaluate`` folders of the real check set, the prank calls
flagged at the shipped thresholds beside the most any threshold on ``p_prank`` could
flag with at most 0 or 1 emergency call and 3% of non-emergency calls flagged (chosen on
the set itself: a ceiling for the model's ranking, not a threshold to ship), and the
prank ROC-AUC against emergency calls with and without an infant crying behind.

``laughter``: the shipped laughter features (``callsift features`` tables) of calls with
and without real laughter in them (the manifest's ``source_files``).

``laughter-loco``: whether a laughter detector could be learned from the real laughter
at hand (ESC-50 ``laughing``, 7 clips): 0.8 s windows, cepstra, their changes, envelope
rhythm and pitch, a gradient-boosted classifier trained on all but one laughter clip and
on speech and sounds that training may use, scored on the clip left out and on
Indonesian speech (``speech-nc``, measured only, never trained on).

``cry-holdout``: whether an infant-cry detector could be learned from the cries training
may use (the hold-out list ``training/real_holdout.json`` keeps the check set's out): the
same windows and classifier as ``laughter-loco``, trained on the training cries against
speech, children's included, laughter and other sounds training may use, scored on the
held-out cries, held-out children and Indonesian speech (``speech-nc``, measured only).

``shrill``: how yin reads real infant cries, children, laughter and adult speech with a
500 Hz ceiling (the features') and a 1000 Hz one (branch ``shrill``, not merged).

``children``: whether the check set's children can be told from its women by voice
(pitch and formants).

``turns``: whether turn-taking (the call-taker's stretches answered by another voice)
tells open lines from talking calls beyond the shipped features.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from training.checkset_report import CRY_SOURCES
from training.simulator.recordings import load_clip

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_CRY = "|".join(CRY_SOURCES)


def _pairs(pairs: list[str]) -> list[tuple[Path, Path]]:
    out = []
    for p in pairs:
        if "=" not in p:
            raise typer.BadParameter(f"expected MANIFEST=PATH, got {p!r}")
        a, b = p.split("=", 1)
        out.append((Path(a), Path(b)))
    return out


def _per_clip(
    paths: list[Path], min_samples: int, measure: Callable[[np.ndarray], list[float]]
) -> np.ndarray:
    """``measure`` of each readable recording (8 kHz) of at least ``min_samples``, one row
    each."""
    clips = (load_clip(p) for p in paths)
    return np.array([measure(y) for y in clips if y is not None and y.size >= min_samples])


def _manifest(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@app.command()
def ceiling(sets: Annotated[list[str], typer.Argument(help="MANIFEST=EVALUATION_DIR")]) -> None:
    """Prank calls flagged: at the shipped thresholds and at the best the ranking allows."""
    from sklearn.metrics import roc_auc_score

    typer.echo(
        "| set | flagged as prank (shipped thresholds) | best, 0 emergency | best, 1 emergency "
        "| prank ROC-AUC vs emergency with a cry | without | repeat numbers flagged "
        "| first-time flagged |"
    )
    typer.echo("|---|---|---|---|---|---|---|---|")
    for manifest, evaluation in _pairs(sets):
        m = _manifest(manifest)
        d = m.merge(pd.read_csv(evaluation / "scores.csv"), on="call_id").sort_values("started_at")
        earlier = d.groupby("caller_id")["label"].transform(
            lambda x: (x == "prank").cumsum().shift(1, fill_value=0)
        )
        d["repeat"] = earlier > 0
        d["cry"] = d["source_files"].str.contains(_CRY)
        d["flagged"] = d["flag"].str.endswith("prank")
        em = np.sort(d.loc[d.label == "emergency", "p_prank"].to_numpy())[::-1]
        ne = np.sort(d.loc[d.label == "non_emergency", "p_prank"].to_numpy())[::-1]
        pr = d[d.label == "prank"]
        best = []
        for k in (0, 1):
            thr = max(em[k], ne[int(0.03 * ne.size)])
            best.append(float((pr.p_prank.to_numpy() > thr).mean()))

        def auc(d: pd.DataFrame, cry: bool) -> float:
            x = d[(d.label == "prank") | ((d.label == "emergency") & (d.cry == cry))]
            return float(roc_auc_score(x.label == "prank", x.p_prank))

        typer.echo(
            f"| {manifest.parent.name} | {pr.flagged.mean():.1%} | {best[0]:.1%} "
            f"| {best[1]:.1%} | {auc(d, True):.3f} | {auc(d, False):.3f} "
            f"| {pr[pr.repeat].flagged.mean():.1%} of {int(pr.repeat.sum())} "
            f"| {pr[~pr.repeat].flagged.mean():.1%} of {int((~pr.repeat).sum())} |"
        )


@app.command()
def laughter(sets: Annotated[list[str], typer.Argument(help="MANIFEST=FEATURES.parquet")]) -> None:
    """The laughter features of calls with real laughter in them and of the rest."""
    cols = ["laughter_mod_ratio", "laughter_regularity", "laughter_burst_share"]
    frames = []
    for manifest, table in _pairs(sets):
        m = _manifest(manifest)[["call_id", "source_files"]]
        frames.append(pd.read_parquet(table).merge(m, on="call_id"))
    d = pd.concat(frames)
    d["laughter in the call"] = d["source_files"].str.contains("laughing")
    d["cry"] = d["source_files"].str.contains(_CRY)
    g = d.groupby(["label", "laughter in the call", "cry"])[cols]
    out = g.median().round(3)
    out.insert(0, "calls", g.size())
    typer.echo("| label | laughter in the call | infant cry | calls | " + " | ".join(cols) + " |")
    typer.echo("|---" * (4 + len(cols)) + "|")
    for key, row in zip(out.index.tolist(), out.to_dict("records"), strict=True):
        cells = [str(k) for k in key] + [str(int(row["calls"]))] + [f"{row[c]:.3f}" for c in cols]
        typer.echo("| " + " | ".join(cells) + " |")


def _windows(y: np.ndarray) -> list[np.ndarray]:
    import librosa

    hop, w = 80, 80  # 10 ms frames, 0.8 s windows, half overlapping
    S = np.abs(librosa.stft(y, n_fft=256, hop_length=hop)) ** 2
    mel = librosa.feature.melspectrogram(S=S, sr=8000, n_mels=32, fmin=250, fmax=3500)
    mf = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=13)
    e = 10 * np.log10(S[8:110].sum(0) + 1e-10)
    f0 = librosa.yin(y, fmin=70, fmax=1000, sr=8000, frame_length=256, hop_length=hop)
    f0 = f0[: mf.shape[1]]
    fr = np.fft.rfftfreq(w, hop / 8000)
    out = []
    for a in range(0, mf.shape[1] - w, w // 2):
        ee = e[a : a + w]
        if ee.max() < e.max() - 20:
            continue
        m = mf[:, a : a + w]
        x = ee - ee.mean()
        sp = np.abs(np.fft.rfft(x * np.hanning(w))) ** 2
        ff = f0[a : a + w]
        steady = np.abs(np.diff(np.log2(ff), prepend=np.log2(ff[:1]))) < 0.1
        v = ff[steady & (ff < 960)]
        rhythm = sp[(fr >= 3) & (fr <= 7)].sum() / (sp[(fr > 0.5) & (fr < 12)].sum() + 1e-12)
        out.append(
            np.concatenate(
                [
                    m.mean(1)[1:],
                    m.std(1),
                    np.diff(m, axis=1).std(1),
                    [rhythm, ee.std(), steady.mean()],
                    [np.median(v) if v.size else 0.0, (v > 400).mean() if v.size else 0.0],
                ]
            )
        )
    return out


def _telephone_band(p: Path) -> np.ndarray:
    """The first 20 s of the recording at ``p``, band-passed to 300-3400 Hz."""
    from scipy.signal import butter, sosfilt

    clip = load_clip(p)
    if clip is None:
        raise typer.BadParameter(f"{p}: not a readable recording")
    band = butter(4, [300, 3400], btype="band", fs=8000, output="sos")
    return sosfilt(band, clip[: 20 * 8000]).astype(np.float32)


@app.command("laughter-loco")
def laughter_loco(
    data: Annotated[Path, typer.Option(help="the shared real recordings")] = DATA,
    seed: int = 0,
) -> None:
    """Leave one laughter clip out: how much of it a detector learned on the rest finds."""
    import random

    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    if not (data / "noise/esc50/laughing").is_dir():
        raise typer.BadParameter(f"{data}/noise/esc50/laughing: no such folder")
    rng = random.Random(seed)
    load = _telephone_band

    def files(pattern: str, n: int | None = None) -> list[Path]:
        found = sorted(p for p in data.glob(pattern) if p.suffix in (".wav", ".flac"))
        rng.shuffle(found)
        return found[:n] if n else found

    laughs = files("noise/esc50/laughing/*")
    negatives = {
        "English digits": files("speech/fsdd/*.wav", 60),
        "children": files("speech/children_en/*.flac", 60),
        "infant cry": files("noise/infant_cry/*", 40) + files("noise/esc50/crying_baby/*"),
        "coughing": files("noise/esc50/coughing/*"),
        "breathing": files("noise/esc50/breathing/*"),
        "street": files("noise/street_berlin/*"),
        "music": files("noise/music/*"),
    }
    X, y, clip = [], [], []
    for i, p in enumerate(laughs):
        for w in _windows(load(p)):
            X.append(w)
            y.append(1)
            clip.append(i)
    for paths in negatives.values():
        for p in paths:
            for w in _windows(load(p)):
                X.append(w)
                y.append(0)
                clip.append(-1)
    Xa, ya, ca = np.nan_to_num(np.array(X)), np.array(y), np.array(clip)
    indo = [w for p in files("speech-nc/id_digits/*/*.flac", 60) for w in _windows(load(p))]
    Xi = np.nan_to_num(np.array(indo))
    negs = np.flatnonzero(ya == 0)
    fold = np.arange(negs.size) % len(laughs)  # negatives split across the folds too
    typer.echo(
        f"{len(laughs)} laughter clips, {int(ya.sum())} laughter windows, {negs.size} others"
    )
    typer.echo(
        "| clip left out | its windows found (p > 0.5) | ROC-AUC vs others left out "
        "| Indonesian speech windows taken for laughter |"
    )
    typer.echo("|---|---|---|---|")
    for i, p in enumerate(laughs):
        test = np.zeros(ya.size, bool)
        test[ca == i] = True
        test[negs[fold == i]] = True
        clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0)
        clf.fit(Xa[~test], ya[~test])
        pt = clf.predict_proba(Xa[test])[:, 1]
        found = float((pt[ya[test] == 1] > 0.5).mean())
        fp = float((clf.predict_proba(Xi)[:, 1] > 0.5).mean())
        auc = roc_auc_score(ya[test], pt)
        typer.echo(f"| {p.name} | {found:.0%} | {auc:.3f} | {fp:.1%} |")


@app.command("cry-holdout")
def cry_holdout(
    data: Annotated[Path, typer.Option(help="the shared real recordings")] = DATA,
    seed: int = 0,
) -> None:
    """An infant-cry detector trained on training cries, scored on held-out ones."""
    import random

    from sklearn.ensemble import HistGradientBoostingClassifier

    from training.simulator.realbank import held_out, load_holdout

    if not (data / "noise/infant_cry").is_dir():
        raise typer.BadParameter(f"{data}/noise/infant_cry: no such folder")
    holdout = load_holdout()
    rng = random.Random(seed)
    load = _telephone_band

    def files(pattern: str, n: int | None = None, *, kept_out: bool = False) -> list[Path]:
        found = sorted(
            p
            for p in data.glob(pattern)
            if p.suffix in (".wav", ".flac")
            and held_out(p.relative_to(data).as_posix(), holdout) == kept_out
        )
        rng.shuffle(found)
        return found[:n] if n else found

    cry = "noise/infant_cry/*", "noise/esc50/crying_baby/*"
    train_pos = [p for c in cry for p in files(c)]
    test_pos = [p for c in cry for p in files(c, kept_out=True)]
    train_neg = {
        "English digits": files("speech/fsdd/*.wav", 80),
        "read speech": files("speech/arctic/*.wav", 40),
        "children": files("speech/children_en/*.flac", 80),
        "laughter": files("noise/esc50/laughing/*"),
        "coughing, breathing": files("noise/esc50/coughing/*") + files("noise/esc50/breathing/*"),
        "street, music": files("noise/street_berlin/*") + files("noise/music/*"),
    }
    test_neg = {
        "held-out children": files("speech/children_en/*.flac", 60, kept_out=True),
        "Indonesian speech (speech-nc)": sorted(data.glob("speech-nc/id_digits/*/*.flac"))[:60],
        "held-out laughter": files("noise/esc50/laughing/*", kept_out=True),
    }

    def windows(paths: list[Path]) -> np.ndarray:
        rows = [w for p in paths for w in _windows(load(p))]
        return np.nan_to_num(np.array(rows)).reshape(len(rows), -1)

    pos = windows(train_pos)
    neg = np.vstack([windows(v) for v in train_neg.values()])
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0)
    clf.fit(np.vstack([pos, neg]), np.r_[np.ones(len(pos)), np.zeros(len(neg))])
    typer.echo(
        f"trained on {len(train_pos)} cry recordings ({len(pos)} windows) and "
        f"{sum(map(len, train_neg.values()))} others ({len(neg)} windows)"
    )
    typer.echo("| held out | recordings | windows | taken for a cry (p > 0.5) |")
    typer.echo("|---|---|---|---|")
    for name, paths in {"infant cries": test_pos, **test_neg}.items():
        w = windows(paths)
        share = float((clf.predict_proba(w)[:, 1] > 0.5).mean()) if len(w) else float("nan")
        typer.echo(f"| {name} | {len(paths)} | {len(w)} | {share:.1%} |")


@app.command()
def shrill(
    data: Annotated[Path, typer.Option(help="the shared real recordings")] = DATA,
    clips: int = 60,
    seed: int = 0,
) -> None:
    """yin's reading of real cries, children, laughter and adult speech, ceiling 500 or
    1000 Hz: median f0 of steady frames and the share of them at 400 Hz or above."""
    import random

    import librosa

    rng = random.Random(seed)

    def files(*patterns: str) -> list[Path]:
        found = sorted(
            p for pat in patterns for p in data.glob(pat) if p.suffix in (".wav", ".flac")
        )
        rng.shuffle(found)
        return found[:clips]

    kinds = {
        "infant cry": files("noise/infant_cry/*", "noise/esc50/crying_baby/*"),
        "children reading": files("speech/children_en/*.flac"),
        "laughter": files("noise/esc50/laughing/*"),
        "Indonesian adults": files("speech-nc/id_digits/*/*.flac"),
    }
    typer.echo("| sound | clips | ceiling 500 Hz: median f0, share >= 400 Hz | ceiling 1000 Hz |")
    typer.echo("|---|---|---|---|")

    def pitch(y: np.ndarray) -> list[float]:
        e = librosa.feature.rms(y=y, frame_length=256, hop_length=160, center=False)[0]
        loud = 20 * np.log10(e + 1e-9) > 20 * np.log10(e.max() + 1e-9) - 25
        row: list[float] = []
        for fmax in (500.0, 1000.0):
            f0 = librosa.yin(
                y, fmin=70, fmax=fmax, sr=8000, frame_length=256, hop_length=160, center=False
            )
            n = min(f0.size, loud.size)
            f = f0[:n][loud[:n]]
            steady = np.abs(np.diff(np.log2(f), prepend=np.log2(f[:1]))) < 0.1
            g = f[steady & (f > 75) & (f < 0.96 * fmax)]
            row += [float(np.median(g)), float(np.mean(g >= 400))] if g.size > 3 else [np.nan] * 2
        return row

    for name, paths in kinds.items():
        rows = _per_clip(paths, 2000, pitch)
        r = np.nanmedian(rows, axis=0)
        typer.echo(
            f"| {name} | {len(rows)} | {r[0]:.0f} Hz, {r[1]:.0%} | {r[2]:.0f} Hz, {r[3]:.0%} |"
        )


def _answered_share(runs: np.ndarray, other: np.ndarray) -> float:
    """Share of the call-taker's stretches whose next stretch is another voice's, within 1.5 s."""
    hits = []
    for stop in runs[~other, 1]:
        later = np.flatnonzero(runs[:, 0] >= stop)
        if later.size:
            j = later[np.argmin(runs[later, 0])]
            hits.append(bool(other[j]) and (runs[j, 0] - stop) < 150)  # 10 ms frames
    return float(np.mean(hits)) if hits else float("nan")


@app.command()
def turns(sets: Annotated[list[str], typer.Argument(help="MANIFEST=FEATURES.parquet")]) -> None:
    """Open lines against talking calls (mono): the call-taker's stretches answered by
    another voice within 1.5 s, alone and added to the shipped features (caller-grouped
    5-fold ROC-AUC of a gradient-boosted model)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    from classifier.audio import load_audio
    from classifier.constants import HOP, N_FFT, SR
    from classifier.features.frames import _COL, _MFCC, frame_values
    from classifier.features.frontend import dither, n_frames, stft_frames
    from classifier.vad import speech_and_whisper_from_stft
    from classifier.voices import voice_runs

    frames = []
    for k, (manifest, table) in enumerate(_pairs(sets)):
        m = _manifest(manifest)
        m = m[
            (m.channels == "mono")
            & (m.label.isin(["emergency", "non_emergency"]) | (m.scenario == "open_line"))
        ]
        shares = []
        for row in m.itertuples():
            y, _ = dither(load_audio(manifest.parent / str(row.audio_path)).caller)
            P, S = stft_frames(y, first=0, last=n_frames(y.size))
            V = frame_values(P, S, sr=SR)
            mask, _ = speech_and_whisper_from_stft(
                P.T, sr=SR, hop_length=HOP, power=P.T, n_fft=N_FFT
            )
            found = voice_runs(mask, V[:, _MFCC], V[:, _COL["band_power"]])
            if found is None or found.runs.size == 0:
                shares.append(float("nan"))
                continue
            runs = np.concatenate([found.enrol, found.runs])
            other = np.concatenate([np.zeros(len(found.enrol), bool), found.other])
            shares.append(_answered_share(runs, other))
        m = m.assign(answered=shares, set=k)[["call_id", "scenario", "answered", "set"]]
        frames.append(pd.read_parquet(table).assign(set=k).merge(m, on=["call_id", "set"]))
    d = pd.concat(frames, ignore_index=True)
    y = (d.scenario == "open_line").to_numpy()
    ok = d.answered.notna().to_numpy()
    typer.echo(f"{int(y.sum())} open lines, {int((~y).sum())} talking calls (mono)")
    typer.echo(f"answered share alone: ROC-AUC {roc_auc_score(y[ok], -d.answered[ok]):.3f}")
    drop = {"call_id", "caller_id", "started_at", "label", "set", "scenario", "answered"}
    base = [
        c
        for c in d.columns
        if c not in drop and not c.startswith("hist_") and d[c].notna().any() and d[c].nunique() > 1
    ]
    groups = (d["set"].astype(str) + d["caller_id"]).to_numpy()
    for name, cols in (
        ("shipped features", base),
        ("with the answered share", [*base, "answered"]),
    ):
        p = cross_val_predict(
            HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, random_state=0),
            d[cols],
            y,
            groups=groups,
            cv=GroupKFold(5),
            method="predict_proba",
        )[:, 1]
        typer.echo(f"{name}: ROC-AUC {roc_auc_score(y, p):.3f}")


def _formants(y: np.ndarray) -> list[float]:
    """Median F1, F2, F3 (LPC order 10 on steady voiced 32 ms frames) and median f0."""
    import librosa
    from scipy.signal import lfilter

    y = lfilter([1.0, -0.7], [1.0], y)
    frames = librosa.util.frame(y, frame_length=256, hop_length=160).T
    e = (frames**2).mean(1)
    f0 = librosa.yin(y, fmin=70, fmax=500, sr=8000, frame_length=256, hop_length=160, center=False)
    f0 = f0[: len(frames)]
    steady = np.abs(np.diff(np.log2(f0), prepend=np.log2(f0[:1]))) < 0.1
    voiced = np.flatnonzero((e > e.max() * 10**-2.5) & steady & (f0 > 75) & (f0 < 480))
    found = []
    for i in voiced[:200]:
        roots = np.roots(librosa.lpc(frames[i] * np.hamming(256), order=10))
        roots = roots[np.imag(roots) > 0]
        hz = np.angle(roots) * 8000 / (2 * np.pi)
        bw = -np.log(np.abs(roots)) * 8000 / np.pi
        hz = np.sort(hz[(bw < 500) & (hz > 200) & (hz < 3700)])
        if hz.size >= 3:
            found.append(hz[:3])
    f = np.median(np.array(found), axis=0) if len(found) > 5 else np.full(3, np.nan)
    return [*map(float, f), float(np.median(f0[voiced])) if voiced.size else float("nan")]


@app.command()
def children(
    data: Annotated[Path, typer.Option(help="the shared real recordings")] = DATA,
    seed: int = 0,
) -> None:
    """Can children's voices be told from women's? Pitch and formants of real children
    (6-12, read English) and the check set's Indonesian women, and their ROC-AUC."""
    import random

    from sklearn.metrics import roc_auc_score

    rng = random.Random(seed)

    def pick(pattern: str, n: int, keep: str = "") -> list[Path]:
        found = [p for p in sorted(data.glob(pattern)) if p.parent.name.startswith(keep)]
        rng.shuffle(found)
        return found[:n]

    kinds = {
        "children (speech/children_en)": pick("speech/children_en/*.flac", 80),
        "Indonesian women (speech-nc)": pick("speech-nc/id_digits/*/*.flac", 60, "F"),
        "Indonesian men (speech-nc)": pick("speech-nc/id_digits/*/*.flac", 60, "M"),
    }
    values = {}
    typer.echo("| voices | clips | median F1 | F2 | F3 | f0 |")
    typer.echo("|---|---|---|---|---|---|")
    for name, paths in kinds.items():
        rows = _per_clip(paths, 4000, _formants)
        values[name] = rows
        m = np.nanmedian(values[name], axis=0)
        typer.echo(f"| {name} | {len(rows)} | {m[0]:.0f} | {m[1]:.0f} | {m[2]:.0f} | {m[3]:.0f} |")
    c, w = list(values.values())[:2]
    aucs = []
    for i, name in enumerate(("F1", "F2", "F3", "f0")):
        x = np.concatenate([c[:, i], w[:, i]])
        y = np.r_[np.ones(len(c)), np.zeros(len(w))]
        ok = ~np.isnan(x)
        aucs.append(f"{name} {roc_auc_score(y[ok], x[ok]):.3f}")
    typer.echo("children against women, ROC-AUC: " + ", ".join(aucs))


if __name__ == "__main__":
    app()
