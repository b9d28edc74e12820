"""Compare voice activity detectors on real speech mixed into real noise at 8 kHz.

Usage (from the project root)::

    .venv/bin/python bench/vad_compare.py [--data ../shared/data] [--silero-onnx PATH]
        [--seed 0] [--quick] [--json out.json]

Speech (``speech/fsdd`` digit strings, ``speech/arctic`` sentences, the noisy VCTK
sentence, and "whispered" versions of them: their spectral envelope re-excited with
noise) is mixed into real noise (kitchen dishes, phone handling rub/tap/friction, room
silence) at 20, 10, 5 and 0 dB SNR, with and without a G.711 mu-law round trip.
Noise-only scenes (the same noises alone, at levels from -50 to -20 dBFS, plus digital
silence) measure false alarms: handling noise is the pocket-dial case and must not count
as speech.

Ground truth is per 10 ms block from the clean speech: a block is speech when its 20 ms
energy is within 30 dB of the clip's maximum, with gaps < 60 ms closed and a 30 ms
hangover. Every detector's output is mapped to samples and scored on the same blocks.

Candidates: webrtcvad (modes 0-3, frames 10/20/30 ms), silero-vad ONNX on onnxruntime
(no torch; pass ``--silero-onnx`` or set ``SILERO_VAD_ONNX``: get the file with
``pip download --no-deps silero-vad -d /tmp/silero && unzip -o /tmp/silero/*.whl -d
/tmp/silero``, it is ``silero_vad/data/silero_vad.onnx``), callsift's own detector
(``classifier.vad``), and webrtcvad gated by callsift's periodicity regions.

Cost is the median wall time over repeats for 60 s of 8 kHz audio on one core.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from math import gcd
from pathlib import Path

# One core, before numpy / onnxruntime start their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy.ndimage import binary_closing, binary_dilation  # noqa: E402
from scipy.signal import resample_poly  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier import vad as cvad  # noqa: E402

SR = 8000
BLOCK = 80  # 10 ms scoring blocks
SNRS = (20.0, 10.0, 5.0, 0.0)
NOISES = ("dishes", "handling", "room")


# ----------------------------------------------------------------------------- data
def find_data(arg: str | None) -> Path | None:
    # An explicit --data is the only place looked at; otherwise env, then ../shared/data.
    cands = (
        [arg]
        if arg
        else [os.environ.get("CALLSIFT_SHARED_DATA"), str(ROOT.parent / "shared" / "data")]
    )
    for c in cands:
        if c and (Path(c) / "speech").is_dir() and (Path(c) / "noise").is_dir():
            return Path(c)
    return None


def load8k(path: str | Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        g = gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g).astype(np.float32)
    return np.asarray(x, dtype=np.float32)


def mulaw_roundtrip(x: np.ndarray) -> np.ndarray:
    mu = 255.0
    x = np.clip(x, -1.0, 1.0)
    q = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127.0) / 127.0
    return (np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu).astype(np.float32)


def block_energy_db(x: np.ndarray) -> np.ndarray:
    """20 ms energy centred on each 10 ms block, dB."""
    n = len(x) // BLOCK
    e = np.square(x[: n * BLOCK].astype(np.float64)).reshape(n, BLOCK).mean(axis=1)
    e2 = np.convolve(e, [0.25, 0.5, 0.25], mode="same")
    return np.asarray(10 * np.log10(e2 + 1e-12))


def ground_truth(clip: np.ndarray) -> np.ndarray:
    e = block_energy_db(clip)
    gt = e > e.max() - 30.0
    return gt


def finish_gt(gt: np.ndarray) -> np.ndarray:
    gt = binary_closing(gt, structure=np.ones(7, bool)) | gt
    k = np.zeros(7, bool)
    k[3:] = True  # hangover: 3 blocks after speech (scipy dilates with the mirrored kernel)
    return np.asarray(binary_dilation(gt, structure=k))


def whisper(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise-excited copy of ``x``: same spectral envelope and energy contour, no pitch."""
    n_fft, hop = 256, 64
    S = np.fft.rfft(frames(x, n_fft, hop) * np.hanning(n_fft), axis=1)
    logm = np.log(np.abs(S) + 1e-6)
    cep = np.fft.irfft(logm, axis=1)
    cep[:, 18:-17] = 0.0  # lifter: keep the formant envelope, drop harmonics
    env = np.exp(np.fft.rfft(cep, axis=1).real)
    noise = rng.standard_normal(len(x) + n_fft).astype(np.float32)
    N = np.fft.rfft(frames(noise, n_fft, hop)[: len(S)] * np.hanning(n_fft), axis=1)
    N /= np.sqrt(np.mean(np.abs(N) ** 2, axis=1, keepdims=True)) + 1e-9
    y = np.fft.irfft(env * N, axis=1) * np.hanning(n_fft)
    out = np.zeros(len(x) + n_fft)
    for i, fr in enumerate(y):
        out[i * hop : i * hop + n_fft] += fr
    out = out[n_fft // 2 : n_fft // 2 + len(x)]
    out *= np.sqrt(np.mean(x**2) / (np.mean(out**2) + 1e-12))
    return out.astype(np.float32)


def frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    xp = np.pad(x, (n // 2, n))
    idx = np.arange(0, len(x), hop)
    return np.stack([xp[i : i + n] for i in idx])


@dataclass
class Scene:
    y: np.ndarray
    gt: np.ndarray  # bool per 10 ms block
    material: str  # fsdd / arctic / vctk / whisper / noise-only
    noise: str
    snr: float  # inf for noise-only
    codec: str  # pcm / mulaw


class Corpus:
    def __init__(self, data: Path, rng: np.random.Generator, quick: bool) -> None:
        self.rng = rng
        fsdd = sorted(glob.glob(str(data / "speech" / "fsdd" / "*.wav")))
        self.by_speaker: dict[str, list[str]] = {}
        for p in fsdd:
            self.by_speaker.setdefault(Path(p).stem.split("_")[1], []).append(p)
        self.arctic = [load8k(p) for p in sorted(glob.glob(str(data / "speech/arctic/*.wav")))]
        self.vctk = load8k(data / "speech" / "p286_011_noisy_speech.wav")
        self.dishes = load8k(data / "noise" / "doing_the_dishes.wav")
        self.handling = [
            load8k(p)
            for p in sorted(glob.glob(str(data / "noise" / "*.wav")))
            if any(k in Path(p).name for k in ("rub", "tap", "friction"))
        ]
        self.room = load8k(data / "noise" / "silence.wav")
        self.digital = load8k(data / "noise" / "digital_silence.wav")
        self.n_digit_strings = 4 if quick else 16

    def speech_clips(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(material, clean speech, gt blocks) scenes of 2-8 s."""
        out = []
        rng = self.rng
        speakers = sorted(self.by_speaker)
        for i in range(self.n_digit_strings):
            files = rng.choice(self.by_speaker[speakers[i % len(speakers)]], size=6, replace=False)
            parts, gts = [], []
            lead = np.zeros(int(rng.uniform(0.4, 1.0) * SR) // BLOCK * BLOCK, np.float32)
            parts.append(lead)
            gts.append(np.zeros(len(lead) // BLOCK, bool))
            for f in files:
                c = load8k(f)
                c = c[: len(c) // BLOCK * BLOCK]
                c = c / (np.sqrt(np.mean(c**2)) + 1e-9) * 0.05  # digits at similar loudness
                parts.append(c)
                gts.append(ground_truth(c))
                gap = np.zeros(int(rng.uniform(0.15, 0.8) * SR) // BLOCK * BLOCK, np.float32)
                parts.append(gap)
                gts.append(np.zeros(len(gap) // BLOCK, bool))
            out.append(("fsdd", np.concatenate(parts), np.concatenate(gts)))
        sentences = [("arctic", c) for c in self.arctic] + [("vctk", self.vctk)]
        for mat, c in sentences:
            pad = np.zeros(int(0.6 * SR), np.float32)
            c = np.concatenate([pad, c[: len(c) // BLOCK * BLOCK], pad])
            out.append((mat, c, ground_truth(c)))
        out = [(m, c, finish_gt(g)) for m, c, g in out]
        whispers = [("whisper", whisper(c, rng), g) for m, c, g in out if m in ("fsdd", "arctic")][
            :: 2 if len(out) > 12 else 1
        ]
        return out + whispers

    def noise(self, kind: str, n: int) -> np.ndarray:
        rng = self.rng
        if kind == "dishes":
            s = int(rng.integers(0, len(self.dishes) - n))
            return self.dishes[s : s + n].copy()
        if kind == "room":
            reps = n // len(self.room) + 2
            s = int(rng.integers(0, len(self.room)))
            return np.tile(self.room, reps)[s : s + n].copy()
        if kind == "handling":
            parts: list[np.ndarray] = []
            total = 0
            while total < n:
                c = self.handling[int(rng.integers(len(self.handling)))]
                c = c * np.float32(10 ** (rng.uniform(-10, 6) / 20))
                parts.append(c)
                total += len(c)
            return np.concatenate(parts)[:n]
        raise ValueError(kind)

    def scenes(self) -> list[Scene]:
        rng = self.rng
        scenes: list[Scene] = []
        for mat, clean, gt in self.speech_clips():
            n = len(gt) * BLOCK
            clean = clean[:n]
            p_speech = np.mean(clean[np.repeat(gt, BLOCK)] ** 2)
            level = 10 ** (rng.uniform(-40, -18) / 20) / np.sqrt(p_speech)
            clean = clean * np.float32(level)
            for kind in NOISES:
                nz = self.noise(kind, n)
                nz /= np.sqrt(np.mean(nz**2)) + 1e-12
                for snr in SNRS:
                    p = np.mean(clean[np.repeat(gt, BLOCK)] ** 2)
                    y = clean + nz * np.float32(np.sqrt(p / 10 ** (snr / 10)))
                    for codec in ("pcm", "mulaw"):
                        yy = mulaw_roundtrip(y) if codec == "mulaw" else y.astype(np.float32)
                        scenes.append(Scene(yy, gt, mat, kind, snr, codec))
        n_only = 3 if len(scenes) < 500 else 8
        for kind in NOISES:
            for _ in range(n_only):
                n = 8 * SR
                nz = self.noise(kind, n)
                nz = nz / (np.sqrt(np.mean(nz**2)) + 1e-12) * 10 ** (rng.uniform(-50, -20) / 20)
                for codec in ("pcm", "mulaw"):
                    yy = mulaw_roundtrip(nz) if codec == "mulaw" else nz.astype(np.float32)
                    scenes.append(
                        Scene(yy, np.zeros(n // BLOCK, bool), "noise-only", kind, np.inf, codec)
                    )
        dig = np.tile(self.digital, 8)[: 4 * SR]
        scenes.append(
            Scene(dig, np.zeros(len(dig) // BLOCK, bool), "noise-only", "digital", np.inf, "pcm")
        )
        return scenes


# ----------------------------------------------------------------------- candidates
Detector = Callable[[np.ndarray], np.ndarray]  # y -> bool per sample


def to_int16(y: np.ndarray) -> bytes:
    return np.clip(np.round(y * 32767), -32768, 32767).astype("<i2").tobytes()


def make_webrtc(mode: int, frame_ms: int) -> Detector:
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    fl = SR * frame_ms // 1000

    def run(y: np.ndarray) -> np.ndarray:
        pcm = to_int16(y)
        n = len(y) // fl
        dec = np.fromiter(
            (vad.is_speech(pcm[2 * i * fl : 2 * (i + 1) * fl], SR) for i in range(n)),
            dtype=bool,
            count=n,
        )
        out = np.zeros(len(y), bool)
        out[: n * fl] = np.repeat(dec, fl)
        return out

    return run


def make_silero(path: str, threshold: float = 0.5) -> Detector:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    chunk, ctx = 256, 32  # 8 kHz: 32 ms chunks plus 32 samples of context (utils_vad.py)
    sr_arr = np.array(SR, dtype=np.int64)

    def run(y: np.ndarray) -> np.ndarray:
        n = -(-len(y) // chunk)
        x = np.zeros(n * chunk + ctx, np.float32)
        x[ctx : ctx + len(y)] = y
        state = np.zeros((2, 1, 128), np.float32)
        probs = np.empty(n, np.float32)
        for i in range(n):
            inp = x[i * chunk : i * chunk + chunk + ctx][None, :]
            out, state = sess.run(None, {"input": inp, "state": state, "sr": sr_arr})
            probs[i] = out[0, 0]
        # Hysteresis as in silero's get_speech_timestamps (neg_threshold = thr - 0.15).
        dec = np.zeros(n, bool)
        on = False
        for i, p in enumerate(probs):
            on = bool(p >= threshold or (on and p >= threshold - 0.15))
            dec[i] = on
        return np.repeat(dec, chunk)[: len(y)]

    return run


def frames_to_samples(mask: np.ndarray, n: int, hop: int = 80) -> np.ndarray:
    """Centre-aligned frame mask (frame t covers t*hop +- hop/2) to a sample mask."""
    out = np.repeat(mask, hop)
    out = np.concatenate([out[hop // 2 :], np.repeat(mask[-1:], hop // 2)])
    return out[:n]


def make_own() -> Detector:
    def run(y: np.ndarray) -> np.ndarray:
        return frames_to_samples(cvad.speech_activity(y, sr=SR, hop_length=80), len(y))

    return run


def make_gated(mode: int, frame_ms: int) -> Detector:
    """webrtcvad frames kept only inside regions callsift's detector calls speech."""
    web = make_webrtc(mode, frame_ms)
    own = make_own()

    def run(y: np.ndarray) -> np.ndarray:
        return web(y) & own(y)

    return run


# ---------------------------------------------------------------------------- score
def score(det: Detector, scenes: list[Scene]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for sc in scenes:
        m = det(sc.y)
        nb = len(sc.gt)
        pred = m[: nb * BLOCK].reshape(nb, BLOCK).mean(axis=1) > 0.5
        rows.append(
            {
                "material": sc.material,
                "noise": sc.noise,
                "snr": sc.snr,
                "codec": sc.codec,
                "tp": int(np.sum(pred & sc.gt)),
                "fp": int(np.sum(pred & ~sc.gt)),
                "fn": int(np.sum(~pred & sc.gt)),
                "tn": int(np.sum(~pred & ~sc.gt)),
            }
        )
    return rows


def summarise(rows: list[dict[str, object]], **where: object) -> dict[str, float]:
    """Pooled frame metrics over the rows whose fields equal ``where``."""
    sel = [r for r in rows if all(r[k] == v for k, v in where.items())]
    tp, fp, fn, tn = (sum(int(r[k]) for r in sel) for k in ("tp", "fp", "fn", "tn"))  # type: ignore[call-overload]
    n = tp + fp + fn + tn
    nan = float("nan")
    return {
        "acc": (tp + tn) / n if n else nan,
        "recall": tp / (tp + fn) if tp + fn else nan,
        "precision": tp / (tp + fp) if tp + fp else nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "fa": fp / (fp + tn) if fp + tn else nan,
    }


def cost_ms(det: Detector, y60: np.ndarray, repeats: int) -> float:
    det(y60[: SR * 2])  # warm up (imports, sessions, caches)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        det(y60)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="shared data folder (speech/, noise/)")
    ap.add_argument("--silero-onnx", default=os.environ.get("SILERO_VAD_ONNX"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="fewer scenes, fewer candidates")
    ap.add_argument("--only", default=None, help="comma-separated candidate name prefixes")
    ap.add_argument("--json", default=None, help="write all results here")
    args = ap.parse_args(argv)

    data = find_data(args.data)
    if data is None:
        print(
            "SKIP: shared data folder not found (pass --data or set CALLSIFT_SHARED_DATA; "
            "expected ../shared/data with speech/ and noise/)"
        )
        return 0
    rng = np.random.default_rng(args.seed)
    corpus = Corpus(data, rng, args.quick)
    scenes = corpus.scenes()
    n_speech = sum(s.material != "noise-only" for s in scenes)
    print(
        f"# {len(scenes)} scenes ({n_speech} with speech), "
        f"{sum(len(s.y) for s in scenes) / SR / 60:.1f} min of audio, data={data}"
    )

    cands: dict[str, Callable[[], Detector]] = {}
    try:
        import webrtcvad  # noqa: F401

        modes = (1, 2, 3) if args.quick else (0, 1, 2, 3)
        frames_ms = (30,) if args.quick else (10, 20, 30)
        for mode in modes:
            for fm in frames_ms:
                cands[f"webrtc m{mode} {fm}ms"] = partial(make_webrtc, mode, fm)
        cands["webrtc m3 30ms & own"] = partial(make_gated, 3, 30)
        cands["webrtc m1 30ms & own"] = partial(make_gated, 1, 30)
    except ImportError:
        print("SKIP webrtcvad: not installed (pip install webrtcvad-wheels)")
    if args.silero_onnx and Path(args.silero_onnx).is_file():
        try:
            import onnxruntime  # noqa: F401

            cands["silero onnx 0.5"] = partial(make_silero, args.silero_onnx, 0.5)
            if not args.quick:
                cands["silero onnx 0.3"] = partial(make_silero, args.silero_onnx, 0.3)
        except ImportError:
            print("SKIP silero: onnxruntime not installed (pip install -e '.[bench]')")
    else:
        print("SKIP silero: no --silero-onnx / SILERO_VAD_ONNX file (see the module docstring)")
    cands["callsift own"] = make_own
    if args.only:
        pre = [p.strip() for p in args.only.split(",")]
        cands = {k: v for k, v in cands.items() if any(k.startswith(p) for p in pre)}

    # 60 s timing signal: the 10 dB mu-law speech scenes (all noises), concatenated.
    y60 = np.concatenate([s.y for s in scenes if s.snr == 10.0 and s.codec == "mulaw"])
    y60 = np.tile(y60, 1 + 60 * SR // len(y60))[: 60 * SR].astype(np.float32)

    results: dict[str, dict] = {}
    for name, factory in cands.items():
        det = factory()
        rows = score(det, scenes)
        sp = [r for r in rows if r["material"] != "noise-only"]
        speech = [r for r in sp if r["material"] != "whisper"]
        res: dict[str, object] = {
            "overall": summarise(speech),
            "whisper": summarise([r for r in sp if r["material"] == "whisper"]),
            "by_snr": {str(v): summarise(speech, snr=v) for v in SNRS},
            "by_noise": {k: summarise(speech, noise=k) for k in NOISES},
            "mulaw": summarise(speech, codec="mulaw"),
            "fa_noise_only": {
                k: summarise(rows, material="noise-only", noise=k)["fa"]
                for k in (*NOISES, "digital")
            },
            "ms_per_60s": cost_ms(det, y60, 3 if "silero" in name else 7),
        }
        results[name] = res
        print_row(name, res)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


_HEADER_DONE = False


def print_row(name: str, r: dict) -> None:
    global _HEADER_DONE
    if not _HEADER_DONE:
        print(
            "| detector | acc | recall | FA in speech scenes | F1 | F1 @20/10/5/0 dB "
            "| F1 dishes/handling/room | F1 mu-law | whisper recall "
            "| FA noise-only dishes/handling/room/digital | ms per 60 s |"
        )
        print("|---" * 11 + "|")
        _HEADER_DONE = True
    o = r["overall"]
    snr = "/".join(f"{r['by_snr'][str(s)]['f1']:.2f}" for s in SNRS)
    nz = "/".join(f"{r['by_noise'][k]['f1']:.2f}" for k in NOISES)
    fa = "/".join(f"{r['fa_noise_only'][k]:.2f}" for k in (*NOISES, "digital"))
    print(
        f"| {name} | {o['acc']:.3f} | {o['recall']:.3f} | {o['fa']:.3f} | {o['f1']:.3f} "
        f"| {snr} | {nz} | {r['mulaw']['f1']:.3f} | {r['whisper']['recall']:.3f} "
        f"| {fa} | {r['ms_per_60s']:.1f} |",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
