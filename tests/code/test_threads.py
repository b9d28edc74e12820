"""Feature bits do not depend on the process's BLAS or OpenMP threads (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest

from classifier.audio import CallAudio
from classifier.features import SR, audio_features
from classifier.threads import one_blas_thread

# Seeded speech-like audio (voiced bursts over noise), long enough that OpenBLAS splits
# the per-frame products between its threads. One process per OpenBLAS kernel (chosen at
# load); in it the BLAS threads are set from the main thread, as the environment
# variables would, and the features computed in the main thread, by a live stream, and
# on another thread after one BLAS thread was set for the process (the service's way).
_EXTRACT = """
import json, sys, threading
import numpy as np
from threadpoolctl import threadpool_limits
from classifier.audio import CallAudio
from classifier.features import SR, audio_features
from classifier.streaming import StreamingFeatures
from classifier.threads import single_threaded_blas

rng = np.random.default_rng(17)
t = np.arange(30 * SR) / SR
voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 9))
y = (0.2 * voiced * ((t % 1.3) < 0.7) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
audio = CallAudio.from_samples(y, sr=SR)

def hexed(feats):
    return {k: float(v).hex() for k, v in feats.items()}

out = {}
for n in (1, 2, 4):
    with threadpool_limits(limits=n, user_api="blas"):
        live = StreamingFeatures(max_seconds=60)
        for i in range(0, y.size, 800):
            live.push(y[i : i + 800])
        out[n] = {"batch": hexed(audio_features(audio)), "live": hexed(live.features())}
single_threaded_blas()
threaded = {}
worker = threading.Thread(target=lambda: threaded.update(audio_features(audio)))
worker.start()
worker.join()
out["thread"] = hexed(threaded)
json.dump(out, sys.stdout)
"""


def _extract(coretype: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if coretype is not None:
        env["OPENBLAS_CORETYPE"] = coretype
    out = subprocess.run(
        [sys.executable, "-c", _EXTRACT], env=env, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


# The split of a product between threads rounds differently on some processors' kernels
# only (on this machine's own, SkylakeX, the bits happened to agree; with the Haswell
# kernel, as on the machine that found it, they did not): both are tried.
@pytest.mark.slow
@pytest.mark.parametrize("coretype", [None, "Haswell"])
def test_features_are_the_same_bits_whatever_the_blas_threads(coretype: str | None) -> None:
    run = _extract(coretype)
    ref = run["1"]
    assert run["thread"] == ref["batch"]
    for n in ("2", "4"):
        for kind in ("batch", "live"):
            differ = [k for k, v in ref[kind].items() if run[n][kind][k] != v]
            assert not differ, f"{kind} features with {n} BLAS threads differ: {differ}"


def test_one_blas_thread_restores_the_setting_after_the_last_thread_leaves() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        with one_blas_thread():
            assert blas_threads() == {1}
            # Another thread comes and goes while this one is still inside: no restore.
            other = threading.Thread(target=_enter_and_leave)
            other.start()
            other.join()
            assert blas_threads() == {1}
        assert blas_threads() == {2}


def _enter_and_leave() -> None:
    with one_blas_thread():
        pass


def test_features_in_process_match_a_fresh_process() -> None:
    rng = np.random.default_rng(17)
    t = np.arange(30 * SR) / SR
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 9))
    y = 0.2 * voiced * ((t % 1.3) < 0.7) + 0.01 * rng.standard_normal(t.size)
    here = audio_features(CallAudio.from_samples(y.astype(np.float32), sr=SR))
    there = _extract()["1"]["batch"]
    assert {k: float(v).hex() for k, v in here.items()} == there
