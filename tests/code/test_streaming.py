"""Live-stream features: equal to the batch features of the audio heard so far."""

from __future__ import annotations

import glob
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from classifier.audio import CallAudio, load_audio
from classifier.errors import InvalidAudioError, InvalidParameterError
from classifier.features import AUDIO_FEATURES, audio_features
from classifier.streaming import BYTES_PER_SECOND, StreamingFeatures, warm_up
from tests.code.test_features import _rustle, _speech_call

SR = 8000
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _mono(y: np.ndarray) -> CallAudio:
    return CallAudio.from_samples(y, subtype="PCM_16")


def _assert_same(live: dict[str, float], batch: dict[str, float], *, where: str) -> None:
    assert list(live) == list(AUDIO_FEATURES)
    for name in AUDIO_FEATURES:
        a, b = live[name], batch[name]
        if np.isnan(b):
            assert np.isnan(a), f"{name} at {where}: live {a}, batch NaN"
        else:
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6), f"{name} at {where}"


def _call(seed: int) -> np.ndarray:
    """Speech, then digital silence (VoIP without comfort noise), then rustle."""
    speech = _speech_call(seed, seconds=9.0)
    return np.concatenate([np.zeros(SR // 2, np.float32), speech, _rustle(seed, seconds=4.0)])


@pytest.mark.parametrize("seed", [0, 1])
def test_stream_equals_batch_of_prefix_and_whole(seed: int) -> None:
    y = _call(seed)
    rng = np.random.default_rng(seed)
    live = StreamingFeatures()
    pos, checked = 0, 0
    next_check = 1.0
    while pos < y.size:
        k = int(rng.integers(160, 801))  # 20 to 100 ms frames
        live.push(y[pos : pos + k])
        pos = min(pos + k, y.size)
        if live.heard_s >= next_check:
            _assert_same(
                live.features(), audio_features(_mono(y[:pos])), where=f"{live.heard_s:.2f} s"
            )
            next_check += 2.7
            checked += 1
    assert checked >= 4
    _assert_same(live.features(), audio_features(_mono(y)), where="end")


def test_frame_size_does_not_matter() -> None:
    y = _call(3)
    a, b = StreamingFeatures(), StreamingFeatures()
    for i in range(0, y.size, 160):
        a.push(y[i : i + 160])
    for i in range(0, y.size, 800):
        b.push(y[i : i + 800])
        if i % 8000 == 0 and b.heard_s > 0.5:
            b.features()  # intermediate updates must not change the end result
    _assert_same(a.features(), b.features(), where="end")


def test_digital_silence_streams_like_batch() -> None:
    y = np.zeros(5 * SR, np.float32)
    live = StreamingFeatures()
    for i in range(0, y.size, 400):
        live.push(y[i : i + 400])
    _assert_same(live.features(), audio_features(_mono(y)), where="end")


def test_memory_stops_at_max_seconds() -> None:
    y = _call(4)
    live = StreamingFeatures(max_seconds=3.0)
    for i in range(0, y.size, 800):
        live.push(y[i : i + 800])
    assert live.heard_s == pytest.approx(3.0)
    assert live.dropped_s == pytest.approx(y.size / SR - 3.0)
    _assert_same(live.features(), audio_features(_mono(y[: 3 * SR])), where="cap")
    assert live.nbytes <= 3.0 * BYTES_PER_SECOND * 1.6


def test_bad_input_is_refused() -> None:
    live = StreamingFeatures()
    with pytest.raises(InvalidParameterError, match="1-D float"):
        live.push(np.zeros((2, 160), np.float32))
    with pytest.raises(InvalidParameterError, match="1-D float"):
        live.push(np.zeros(160, np.int16))
    with pytest.raises(InvalidAudioError, match="NaN"):
        live.push(np.full(160, np.nan, np.float32))
    live.push(np.zeros(800, np.float32))
    with pytest.raises(InvalidAudioError, match="at least 2000"):
        live.features()
    with pytest.raises(InvalidParameterError, match="max_seconds"):
        StreamingFeatures(max_seconds=0.1)


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data (real recordings) absent")
def test_real_recordings_stream_like_batch() -> None:
    files = sorted(glob.glob(str(DATA / "**" / "*.wav"), recursive=True))[::9][:6]
    assert files
    for path in files:
        y = load_audio(path).caller
        if y.size < SR:
            continue
        live = StreamingFeatures()
        for i in range(0, y.size, 320):
            live.push(y[i : i + 320])
            if i % SR == 0 and live.heard_s >= 0.5:
                live.features()
        _assert_same(live.features(), audio_features(_mono(y)), where=path)


@pytest.mark.skipif(sys.platform == "win32", reason="the warm-up lock is an flock")
def test_processes_warming_up_at_once_take_turns() -> None:
    # Two processes writing numba's cache at once left a cache that crashed every
    # process loading it: a warm-up waits while another process warms up.
    warm_up()  # compiled here already: the timed call below only waits or loads
    code = (
        "import time\nfrom classifier.streaming import warm_up_lock\n"
        "with warm_up_lock():\n"
        "    print('held', flush=True)\n    time.sleep(2)\n    print(time.monotonic(), flush=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    warm_up()
    done = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
    released = float(proc.stdout.readline())
    assert proc.wait(timeout=60) == 0
    assert done > released, "warm_up ran while another process held the lock"


def test_warm_up_compiles_every_cached_kernel_of_the_statistics() -> None:
    # A kernel first compiled during a live stream holds the event loop ~400 ms.
    import numba.core.registry

    from classifier import callstats

    warm_up()
    kernels = {
        name: obj
        for name, obj in vars(callstats).items()
        if isinstance(obj, numba.core.registry.CPUDispatcher)
    }
    assert len(kernels) >= 4
    assert [name for name, k in kernels.items() if not k.signatures] == []
