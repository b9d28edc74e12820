"""How often classifier.voices attributes a speech frame to the right voice (issue 15).

Builds mono calls from two real speakers: speaker A, the call-taker, greets and prompts;
speaker B, the caller, answers in turns (or, for an open line, never speaks). The truth
of each speech frame is the louder of the two tracks before mixing. Reports the share of
speech frames attributed right, per corpus:

- ``tune``: English speakers (FSDD digits, CMU ARCTIC, children's read speech), which
  may be used to choose the attribution's constants;
- ``check``: Indonesian speakers of ``speech-nc/id_digits`` (measurement only, never
  used to choose anything).

    .venv/bin/python bench/voice_attribution.py --pairs 60
    .venv/bin/python bench/voice_attribution.py --sim /tmp/simstereo/manifest.csv
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

from classifier import voices
from classifier.features import (
    HOP,
    N_FFT,
    SR,
    n_frames,
    voice_inputs,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _load(path: Path) -> np.ndarray:
    """A recording at 8 kHz, silence at both ends cut, at unit RMS over its louder half."""
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr != SR:
        g = np.gcd(int(sr), SR)
        y = resample_poly(y, SR // g, int(sr) // g).astype(np.float32)
    e = np.convolve(y.astype(np.float64) ** 2, np.ones(160) / 160, mode="same")
    loud = np.flatnonzero(e > 1e-3 * e.max())  # within 30 dB of the loudest 20 ms
    y = y[max(int(loud[0]) - 240, 0) : int(loud[-1]) + 240]
    e = e[max(int(loud[0]) - 240, 0) : int(loud[-1]) + 240]
    active = float(np.sqrt(np.mean(e[e >= np.median(e)]))) or 1.0
    return (y / active).astype(np.float32)


def speakers(corpus: str) -> dict[str, list[Path]]:
    """Real speakers' files, by speaker (at least 8 s of recordings each)."""
    out: dict[str, list[Path]] = defaultdict(list)
    if corpus == "tune":
        for p in sorted((DATA / "speech" / "fsdd").glob("*.wav")):
            out["fsdd-" + p.stem.split("_")[1]].append(p)
        for p in sorted((DATA / "speech" / "arctic").glob("*.wav")):
            out["arctic-" + p.stem.split("_")[3]].append(p)
        for p in sorted((DATA / "speech" / "children_en").glob("*.flac")):
            out["child-" + p.stem[1:5]].append(p)  # 000030012: speaker 0003, utt. 0012
    else:
        for d in sorted((DATA / "speech-nc" / "id_digits").iterdir()):
            if d.is_dir():
                out["id-" + d.name] = sorted(d.glob("*.flac"))
    return {k: v for k, v in out.items() if sum(sf.info(p).duration for p in v) >= 8.0}


def _say(files: list[Path], rng: np.random.Generator, seconds: float) -> np.ndarray:
    """At least ``seconds`` of one speaker: utterances with short pauses between them."""
    parts: list[np.ndarray] = []
    total = 0.0
    for i in rng.permutation(len(files)):
        if parts:
            parts.append(np.zeros(int(rng.uniform(0.08, 0.3) * SR), np.float32))
        parts.append(_load(files[int(i)]))
        total += parts[-1].size / SR
        if total >= seconds:
            break
    return np.concatenate(parts)


def _excerpt(files: list[Path], rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A short piece of one of the speaker's recordings (a whole digit, or a few words)."""
    y = _load(files[int(rng.integers(len(files)))])
    n = int(seconds * SR)
    start = int(rng.integers(max(y.size - n, 0) + 1))
    return y[start : start + n]


def _db(x: float) -> float:
    return float(10 ** (x / 20))


_PHONE = butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")


def _mulaw(y: np.ndarray) -> np.ndarray:
    """G.711 mu-law round trip (8 bits)."""
    c = np.sign(y) * np.log1p(255 * np.minimum(np.abs(y), 1)) / np.log1p(255)
    q = np.round(c * 127) / 127
    return (np.sign(q) * np.expm1(np.abs(q) * np.log1p(255)) / 255).astype(np.float32)


def _noise_clips() -> list[Path]:
    root = DATA / "noise"
    return sorted((root / "misc").glob("*.flac")) + sorted((root / "street_berlin").glob("*.flac"))


def frame_energy(track: np.ndarray) -> np.ndarray:
    """Energy of each STFT frame's 32 ms window (frame ``t`` centred on ``80 t``)."""
    frames = n_frames(track.size)
    pad = np.pad(track, (N_FFT // 2, frames * HOP + N_FFT - track.size))
    idx = np.arange(frames)[:, None] * HOP + np.arange(N_FFT)[None, :]
    return (pad[idx].astype(np.float64) ** 2).sum(axis=1)


def build_call(
    a: list[Path], b: list[Path] | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A mono call (float32) and the two voices' per-frame energies (taker, caller).

    The call-taker (``a``) greets, then the caller (``b``) answers in turns and the
    call-taker asks between them; with ``b`` None, an open line: the call-taker prompts
    over silence. A turn the caller leaves unanswered gets the call-taker's prompt: the
    same short "halo?" (a piece of one of their recordings) each time.

    Levels: each voice's speech at -22 to -14 dBFS, the caller's a further 12 dB quieter
    to 3 dB louder (the call-taker's headset is a local line, the caller comes through
    the network). The caller's voice is band-passed to 300-3400 Hz half the time and
    through a mu-law codec half the time, with their room's noise (18-35 dB under their
    speech) under the whole call a third of the time. Line hiss on the mix (-65 to -45
    dBFS); the whole mix through mu-law a third of the time.
    """
    pieces: list[tuple[str, np.ndarray]] = [("A", _say(a, rng, rng.uniform(1.5, 3.5)))]
    prompt = _excerpt(a, rng, rng.uniform(0.4, 1.0))  # "halo?", the same every time
    for _ in range(int(rng.integers(2, 6))):
        gap = np.zeros(int(rng.uniform(0.25, 1.0) * SR), np.float32)
        if b is not None and rng.random() < 0.8:
            pieces += [("-", gap), ("B", _say(b, rng, rng.uniform(0.8, 4.0)))]
            if rng.random() < 0.6:  # a question of the call-taker's
                gap = np.zeros(int(rng.uniform(0.25, 1.0) * SR), np.float32)
                pieces += [("-", gap), ("A", _say(a, rng, rng.uniform(0.6, 2.0)))]
        else:  # nobody answers: "halo?"
            pieces.append(("-", np.zeros(int(rng.uniform(1.5, 3.5) * SR), np.float32)))
            pieces.append(("A", prompt * _db(rng.uniform(-2, 2))))
    pieces.append(("-", np.zeros(int(rng.uniform(0.3, 1.0) * SR), np.float32)))
    n = sum(p.size for _, p in pieces)
    ta, tb = np.zeros(n, np.float32), np.zeros(n, np.float32)
    at = 0
    for who, p in pieces:
        if who == "A":
            ta[at : at + p.size] = p
        elif who == "B":
            tb[at : at + p.size] = p
        at += p.size
    ta *= _db(rng.uniform(-22, -14))  # active speech level, dBFS
    tb *= _db(rng.uniform(-22, -14)) * _db(rng.uniform(-12, 3))
    if rng.random() < 0.5:
        tb = sosfilt(_PHONE, tb).astype(np.float32)
    if rng.random() < 0.5:
        tb = _mulaw(tb)
    y = ta + tb
    clips = _noise_clips()
    if clips and rng.random() < 1 / 3:  # the caller's room, under the whole call
        clip = _load(clips[int(rng.integers(len(clips)))])
        clip = np.resize(clip[int(rng.integers(clip.size // 2)) :], n)
        level = float(np.sqrt(np.mean(tb[tb != 0] ** 2))) if tb.any() else _db(-30)
        y += clip * level * _db(rng.uniform(-35, -18))
    y += _db(rng.uniform(-65, -45)) * rng.standard_normal(n).astype(np.float32)
    if rng.random() < 1 / 3:
        y = _mulaw(y)
    return y.astype(np.float32), frame_energy(ta), frame_energy(tb)


class Analysed(NamedTuple):
    """What the attribution sees of a call, and the truth to score it against."""

    mask: np.ndarray  # speech frames
    cepstra: np.ndarray  # MFCC 0-12 per frame
    power: np.ndarray  # band power per frame
    f0: np.ndarray  # f0 per frame (Hz, NaN unvoiced)
    heard: np.ndarray  # frames scored: someone speaks
    truth: np.ndarray  # frames of another voice than the call-taker's
    open_line: bool


def analyse(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The project's pipeline on a mono call: speech mask, cepstra, power, f0 per frame."""
    mask, cepstra, power, f0 = voice_inputs(y)
    assert f0 is not None
    return mask, cepstra, power, f0


def attribution(a: Analysed, pitch: bool = True) -> tuple[np.ndarray, bool]:
    """Each frame's attribution (True: another voice than the call-taker's), enrolled."""
    other = np.zeros(a.mask.size, bool)
    found = voices.voice_runs(a.mask, a.cepstra, a.power, a.f0 if pitch else None)
    if found is not None:
        for (s, e), is_other in zip(found.runs, found.other, strict=True):
            other[s:e] = is_other
    return other, found is not None


class Tally:
    """Speech frames attributed right, and what open lines' features would say."""

    def __init__(self) -> None:
        self.right = self.total = self.calls = 0
        self.unenrolled = self.unenrolled_frames = 0
        self.open_calls = self.open_taker_only = self.open_other = self.open_frames = 0
        self.caller_calls = self.caller_heard = 0

    def add(self, a: Analysed, pitch: bool = True) -> float:
        other, enrolled = attribution(a, pitch)
        scored = a.mask & a.heard
        self.calls += 1
        if not enrolled:
            self.unenrolled += 1
            self.unenrolled_frames += int(scored.sum())
            return float("nan")
        right = int((other[scored] == a.truth[scored]).sum())
        self.right += right
        self.total += int(scored.sum())
        if a.open_line:
            self.open_calls += 1
            self.open_taker_only += int(not other.any())
            self.open_other += int(other[a.mask].sum())
            self.open_frames += int(a.mask.sum())
        elif (a.truth & scored).sum() >= 50:
            self.caller_calls += 1
            self.caller_heard += int(other.any())
        return right / max(int(scored.sum()), 1)

    @property
    def share(self) -> float:
        return self.right / max(self.total, 1)

    def lines(self, name: str) -> str:
        text = [
            f"{name}: {self.calls} calls, {100 * self.share:.1f}% of {self.total} speech "
            f"frames attributed right"
        ]
        if self.unenrolled:
            text.append(
                f"  no voice enrolled (features NaN, frames not scored): {self.unenrolled} "
                f"calls, {self.unenrolled_frames} speech frames"
            )
        if self.open_calls:
            text.append(
                f"  open lines: {self.open_taker_only}/{self.open_calls} found taker_only; "
                f"{100 * self.open_other / max(self.open_frames, 1):.1f}% of their speech "
                "frames given to another voice"
            )
        if self.caller_calls:
            text.append(
                f"  calls where the caller spoke 0.5 s or more: another voice found in "
                f"{self.caller_heard}/{self.caller_calls}"
            )
        return "\n".join(text)


def corpus_calls(corpus: str, pairs: int, seed: int, takers: str = "adults"):  # type: ignore[no-untyped-def]
    """:class:`Analysed` calls of ``pairs`` speaker pairs of a corpus.

    ``takers="adults"``: the call-taker is an adult (as at a 112 centre) and, in the tune
    corpus, the caller an adult or a child at even odds; ``"any"``: both drawn from all
    speakers (a child call-taker too: harder than a centre's calls).
    """
    spk = speakers(corpus)
    names = sorted(spk)
    adults = [x for x in names if not x.startswith("child-")]
    children = [x for x in names if x.startswith("child-")]
    rng = np.random.default_rng(seed)
    for k in range(pairs):
        if takers == "adults" and children:
            a = adults[int(rng.integers(len(adults)))]
            others = [x for x in adults if x != a] if rng.random() < 0.5 else children
            b = others[int(rng.integers(len(others)))]
        elif takers == "adults":
            i, j = rng.choice(len(adults), size=2, replace=False)
            a, b = adults[i], adults[j]
        else:
            i, j = rng.choice(len(names), size=2, replace=False)
            a, b = names[i], names[j]
        caller = None if k % 4 == 3 else spk[b]  # every fourth call an open line
        y, ea, eb = build_call(spk[a], caller, np.random.default_rng([seed, k]))
        mask, cep, power, f0 = analyse(y)
        n = mask.size
        ea, eb = np.pad(ea, (0, max(n - ea.size, 0)))[:n], np.pad(eb, (0, max(n - eb.size, 0)))[:n]
        heard = (ea + eb) > 1e-4 * max(float(ea.max()), float(eb.max()), 1e-12)
        yield Analysed(mask, cep, power, f0, heard, eb > ea, caller is None)


def _active(e: np.ndarray) -> np.ndarray:
    """Frames of a channel 15 dB or more above its quietest tenth, pauses < 0.1 s bridged."""
    on = e > np.percentile(e, 10) * 10**1.5
    runs = voices.segments(on, merge_gap=10, min_len=1)
    out = np.zeros(e.size, bool)
    for s, t in runs:
        out[s:t] = True
    return out


def sim_calls(manifest: Path):  # type: ignore[no-untyped-def]
    """Stereo calls of a simulated corpus mixed down to mono, truth from each channel.

    A frame is the call-taker's when their channel is active (15 dB above its floor) and
    not quieter than the caller's; another voice's when the caller's channel is active
    and the call-taker's is not, or is quieter. Frames where neither is active are not
    scored (the caller's channel carries their room's noise all call long).
    """
    import csv

    from classifier.audio import load_audio

    with manifest.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["caller_channel"] in ("left", "right")]
    for r in rows:
        audio = load_audio(manifest.parent / r["audio_path"], caller_channel=r["caller_channel"])
        caller, taker = audio.caller, audio.other
        assert taker is not None
        y = (0.5 * (caller + taker)).astype(np.float32)
        mask, cep, power, f0 = analyse(y)
        ea, eb = frame_energy(taker)[: mask.size], frame_energy(caller)[: mask.size]
        aa, ab = _active(ea), _active(eb)
        heard, truth = aa | ab, ab & (~aa | (eb > ea))
        # An open line: no other voice in 0.5 s of the speech heard (whatever the label).
        yield Analysed(mask, cep, power, f0, heard, truth, int((mask & heard & truth).sum()) < 50)


def _psd(m: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """``m`` made symmetric positive definite: eigenvalues at least ``floor`` x the largest."""
    w, u = np.linalg.eigh((m + m.T) / 2)
    return (u * np.maximum(w, floor * w.max())) @ u.T


def fit(calls: list[Analysed]) -> str:
    """voices.VOICE_ROTATION, WITHIN_C, WITHIN_V and BETWEEN fitted on ``calls``.

    Each stretch after the opening whose frames are one voice's (90% or more) gives its
    summary's difference from the opening's (:func:`classifier.voices.stretch_summaries`).
    The call-taker's stretches give the scatter of one speaker's stretches, as a constant
    (what the words said add) plus a part shrinking with the stretch's frames; the other
    voices' stretches give how much further another speaker lies. Pitch is fitted on its
    own by maximum likelihood; level and cepstra 1-12 as 13 x 13 covariances (moments),
    then rotated so that both the constant and the shrinking part are diagonal.
    """
    from scipy.linalg import eigh
    from scipy.optimize import minimize

    dz: dict[bool, list[np.ndarray]] = {False: [], True: []}
    frames: dict[bool, list[float]] = {False: [], True: []}
    for a in calls:
        found = voices.voice_runs(a.mask, a.cepstra, a.power, a.f0)
        if found is None:
            continue
        ranges = np.concatenate([found.enrol, found.runs])
        group = np.repeat(
            np.arange(len(found.runs) + 1), [len(found.enrol)] + [1] * len(found.runs)
        )
        z = voices.stretch_summaries(ranges, group, a.cepstra, a.power, a.f0)
        for (s, e), zi in zip(found.runs, z[1:], strict=True):
            scored = a.mask[s:e] & a.heard[s:e]
            if scored.sum() < 0.5 * (e - s):
                continue
            share = float(a.truth[s:e][scored].mean())
            if share < 0.1 or share > 0.9:
                dz[share > 0.9].append(zi - z[0])
                frames[share > 0.9].append(float(e - s))
    d, n = np.array(dz[False]), np.array(frames[False])
    do, no = np.array(dz[True]), np.array(frames[True])

    def nll(var: np.ndarray, d2: np.ndarray) -> float:
        return float(np.sum(d2 / var + np.log(var)))

    # Pitch: maximum likelihood of within (constant + per frame) and between variances.
    ok, oko = np.isfinite(d[:, 1]), np.isfinite(do[:, 1])
    d2, n1, o2, o1 = d[ok, 1] ** 2, n[ok], do[oko, 1] ** 2, no[oko]
    c, v = np.exp(
        minimize(
            lambda x: nll(np.exp(x[0]) + np.exp(x[1]) / n1, d2),
            np.log([np.mean(d2) / 2, np.mean(d2) * 50]),
            method="Nelder-Mead",
        ).x
    )
    b = float(
        np.exp(
            minimize(
                lambda x: nll(c + v / o1 + np.exp(x[0]), o2),
                np.log([np.mean(o2)]),
                method="Nelder-Mead",
            ).x[0]
        )
    )
    # Level and cepstra: covariances by moments, E[d d'] = C + V / frames.
    rest = [0, *range(2, len(voices.SUMMARY))]
    x, xo = d[:, rest], do[:, rest]
    A = np.stack([np.ones(len(n)), 1.0 / n], axis=1)
    outer = np.einsum("ni,nj->nij", x, x).reshape(len(n), -1)
    cw, vw = (
        _psd(m.reshape(len(rest), len(rest))) for m in np.linalg.lstsq(A, outer, rcond=None)[0]
    )
    bw = _psd(np.einsum("ni,nj->ij", xo, xo) / len(no) - cw - vw * np.mean(1.0 / no))
    lam, rot = eigh(vw, cw)  # rot' C rot = I, rot' V rot = diag(lam)
    between = np.diag(rot.T @ bw @ rot)

    def numbers(values: np.ndarray, indent: str) -> str:
        """Comma-separated, wrapped under 100 characters."""
        items = [f"{x:.5g}" for x in values]
        lines, line = [], ""
        for item in items:
            if line and len(indent) + len(line) + len(item) + 2 > 96:
                lines.append(line)
                line = ""
            line += item + ", "
        lines.append(line)
        return ("\n" + indent).join(x.rstrip() for x in lines).rstrip(",")

    def arr(values: np.ndarray) -> str:
        return "np.array([\n    " + numbers(values, "    ") + ",\n])"

    rows = "\n    ".join("[" + numbers(r, "     ") + "]," for r in rot)
    return "\n".join(
        [
            f"# fitted on {len(n)} call-taker and {len(no)} other stretches",
            "# fmt: off",
            f"VOICE_ROTATION = np.array([\n    {rows}\n])",
            f"WITHIN_C = {arr(np.concatenate([[c], np.ones(len(rest))]))}",
            f"WITHIN_V = {arr(np.concatenate([[v], lam]))}",
            f"BETWEEN = {arr(np.concatenate([[b], between]))}",
            "# fmt: on",
        ]
    )


def evaluate(calls, name: str, verbose: bool = False, pitch: bool = True) -> Tally:  # type: ignore[no-untyped-def]
    tally = Tally()
    for k, a in enumerate(calls):
        share = tally.add(a, pitch)
        if verbose:
            print(f"  call {k}: {100 * share:.0f}% right{' (open line)' if a.open_line else ''}")
    print(tally.lines(name), flush=True)
    return tally


SWEEP: dict[str, list[float]] = {
    "OTHER_PRIOR": [-1.5, -1.0, -0.5, 0.0],
    "NEW_VOICE_SHARE": [0.1, 0.3],
    "MIN_OTHER_FRAMES": [50, 100, 200],
}


def sweep(calls: list[Analysed]) -> None:
    """Share right for each setting of the attribution's free constants."""
    import itertools

    keys = list(SWEEP)
    saved = {k: getattr(voices, k) for k in keys}
    try:
        for values in itertools.product(*(SWEEP[k] for k in keys)):
            for k, v in zip(keys, values, strict=True):
                setattr(voices, k, v)
            tally = Tally()
            for a in calls:
                tally.add(a)
            setting = ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
            print(
                f"  {setting}: {100 * tally.share:.1f}% right; open lines: taker_only "
                f"{tally.open_taker_only}/{tally.open_calls}, "
                f"{100 * tally.open_other / max(tally.open_frames, 1):.1f}% of their frames "
                "another voice's",
                flush=True,
            )
    finally:
        for k, v in saved.items():
            setattr(voices, k, v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--corpus", choices=["tune", "check", "both", "none"], default="both")
    parser.add_argument(
        "--takers", choices=["adults", "any"], default="adults", help="who the call-taker is"
    )
    parser.add_argument("--sim", type=Path, help="manifest.csv of a simulated corpus")
    parser.add_argument("--verbose", action="store_true", help="every call's share")
    parser.add_argument("--no-pitch", action="store_true", help="attribute without f0")
    parser.add_argument(
        "--fit", action="store_true", help="fit the voice space (tune only, both --takers)"
    )
    parser.add_argument("--sweep", action="store_true", help="free constants (tune only)")
    args = parser.parse_args()
    corpora = {"both": ("tune", "check"), "none": ()}.get(args.corpus, (args.corpus,))
    if corpora and not DATA.is_dir():
        raise SystemExit(f"error: {DATA} not found: the real recordings are needed")
    if (args.fit or args.sweep) and corpora != ("tune",):
        raise SystemExit("error: --fit and --sweep choose constants: --corpus tune only")
    for corpus in corpora:
        calls = corpus_calls(corpus, args.pairs, args.seed, args.takers)
        who = f"call-takers: {args.takers}, " if corpus == "tune" else ""
        name = f"corpus {corpus} ({who}seed {args.seed}, {args.pairs} pairs)"
        if args.fit:
            # Both kinds of pairs: adult call-takers, and children as call-takers too.
            other = corpus_calls(
                corpus, args.pairs, args.seed, "any" if args.takers == "adults" else "adults"
            )
            print(fit([*calls, *other]))
        elif args.sweep:
            sweep(list(calls))
        else:
            evaluate(calls, name, args.verbose, not args.no_pitch)
    if args.sim is not None:
        name = f"simulated stereo mixed to mono ({args.sim})"
        evaluate(sim_calls(args.sim), name, args.verbose, not args.no_pitch)


if __name__ == "__main__":
    main()
