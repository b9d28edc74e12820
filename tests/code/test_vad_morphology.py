"""classifier.vad's replacements of scipy.ndimage calls, against scipy itself.

scipy is the specification: every replacement must give exactly scipy's result (the
masks bit for bit, the floors to the last float) on many random inputs and sizes, or
agree to float rounding where the brief allows it (the energy smoothing). The noise
estimate's incremental quiet-frame selection is checked against a plain selection.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import (
    binary_closing,
    binary_dilation,
    binary_erosion,
    grey_opening,
    label,
    maximum_filter1d,
    minimum_filter1d,
    uniform_filter1d,
)

from classifier.vad import VadMemo, detector, noise
from classifier.vad.detector import _lengths
from classifier.vad.morphology import (
    _ACTIVE,
    _N_ROWS,
    _NEAR,
    _NUCLEI,
    _SHAPED,
    _STEADY,
    _VOICED,
    _WITH_WHISPER,
    _dilation_reach,
    _erosion_reach,
    _kernels,
    _mask_programs,
    _step,
)

RNG_SEEDS = range(6)


def random_mask(rng: np.random.Generator, n: int) -> np.ndarray:
    """Speech-like masks (runs of every length) and salt-and-pepper ones."""
    if rng.random() < 0.5:
        return rng.random(n) < rng.uniform(0.02, 0.98)
    out = np.zeros(n, bool)
    i = 0
    while i < n:
        length = int(rng.integers(1, 40))
        out[i : i + length] = rng.random() < 0.5
        i += length
    return out


def run(program: list[list[int]], *inputs: np.ndarray) -> np.ndarray:
    """Rows after running ``program`` on a work array whose first rows are ``inputs``."""
    rows = np.zeros((_N_ROWS, inputs[0].size), bool)
    for i, x in enumerate(inputs):
        rows[i] = x
    _kernels().run(rows, np.array(program, np.int64))
    return rows


def keep_runs_ref(mask: np.ndarray, min_len: int) -> np.ndarray:
    """main's _keep_runs: scipy.ndimage.label and run lengths."""
    if min_len <= 1:
        return mask
    regions, n = label(mask)
    if n == 0:
        return mask
    ok = np.bincount(regions) >= min_len
    ok[0] = False
    return np.asarray(ok[regions])


def hangover_kernel(hang: int) -> np.ndarray:
    kernel = np.zeros(2 * hang + 1, bool)
    kernel[hang:] = True
    return kernel


# ------------------------------------------------------------------ single steps
@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_dilation_erosion_and_closing_equal_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(150):
        n = int(rng.integers(1, 400))
        size = int(rng.integers(1, 45))  # odd and even: scipy centres even sizes off by one
        x = random_mask(rng, n)
        ones = np.ones(size, bool)
        rows = run(
            [
                _step(0, 1, _dilation_reach(size)),
                _step(0, 2, _erosion_reach(size), every=True),
                _step(0, 3, _dilation_reach(size)),
                _step(3, 3, _erosion_reach(size), every=True),
            ],
            x,
        )
        np.testing.assert_array_equal(rows[1], binary_dilation(x, structure=ones))
        np.testing.assert_array_equal(rows[2], binary_erosion(x, structure=ones))
        np.testing.assert_array_equal(rows[3], binary_closing(x, structure=ones))


@pytest.mark.parametrize("hang", range(8))
def test_hangover_dilation_equals_scipy_with_its_mirrored_kernel(hang: int) -> None:
    rng = np.random.default_rng(hang)
    for _ in range(100):
        x = random_mask(rng, int(rng.integers(1, 300)))
        rows = run([_step(0, 1, (hang, 0))], x)
        np.testing.assert_array_equal(rows[1], binary_dilation(x, structure=hangover_kernel(hang)))


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_keep_runs_by_opening_equals_label_and_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(150):
        x = random_mask(rng, int(rng.integers(1, 400)))
        min_len = int(rng.integers(1, 30))
        reach = _erosion_reach(min_len)
        rows = run([_step(0, 1, reach, every=True), _step(1, 2, reach[::-1])], x)
        np.testing.assert_array_equal(rows[2], keep_runs_ref(x, min_len))


def test_row_operations() -> None:
    rng = np.random.default_rng(7)
    a, b, c, d = (random_mask(rng, 257) for _ in range(4))
    rows = run(
        [
            _step(0, 4, and_row=1),
            _step(0, 5, and_not_row=2),
            _step(0, 6, or_row=3),
            _step(0, 7, and_row=1, and_not_row=2, or_row=3),
            _step(0, 0, or_row=0),  # in place
        ],
        a,
        b,
        c,
        d,
    )
    np.testing.assert_array_equal(rows[4], a & b)
    np.testing.assert_array_equal(rows[5], a & ~c)
    np.testing.assert_array_equal(rows[6], a | d)
    np.testing.assert_array_equal(rows[7], (a & b & ~c) | d)
    np.testing.assert_array_equal(rows[0], a)


def test_program_inputs_equal_mains_lag_continuity_and_activity() -> None:
    rng = np.random.default_rng(11)
    inputs = _kernels().inputs
    for _ in range(300):
        n = int(rng.integers(1, 400))
        at = np.flatnonzero(rng.random(n) < rng.uniform(0.05, 1.0))
        ac = rng.uniform(0.5, 1.0, at.size).astype(np.float32)
        ac[rng.random(at.size) < 0.1] = np.float32(detector._VOICED_AC)  # on the threshold
        lag = rng.choice(np.arange(20, 108), at.size).astype(np.float32)
        snr = rng.uniform(-5, 10, n).astype(np.float32)
        snr[rng.random(n) < 0.1] = np.float32(detector._ACTIVE_SNR_DB)
        audible = rng.random(n) < 0.8
        # main: voiced candidates with a lag within 10 % of a neighbour's (others lag 0)
        voiced = np.zeros(n, bool)
        voiced[at] = ac >= detector._VOICED_AC
        lag_all = np.zeros(n, np.float32)
        lag_all[at] = lag
        ok = np.abs(np.diff(lag_all)) <= detector._PITCH_TOL * lag_all[1:]
        cont = np.zeros(n, bool)
        cont[1:] |= ok
        cont[:-1] |= ok
        rows = np.zeros((_N_ROWS, n), bool)
        inputs(
            rows,
            at,
            ac,
            lag,
            snr,
            audible,
            detector._VOICED_AC,
            detector._PITCH_TOL32,
            detector._ACTIVE_SNR_DB,
        )
        np.testing.assert_array_equal(rows[_STEADY], voiced & cont)
        np.testing.assert_array_equal(rows[_ACTIVE], (snr >= detector._ACTIVE_SNR_DB) & audible)


# ------------------------------------------------------------------ whole programs
def decide_ref(
    steady: np.ndarray, shaped: np.ndarray, active: np.ndarray, fps: float
) -> tuple[np.ndarray, ...]:
    """main's scipy chain after the periodicity test: nuclei, near, voiced, with whisper.

    ``shaped`` plays main's whisper candidates (already away from ``near``).
    """
    min_voiced = max(1, round(detector._MIN_VOICED_S * fps))
    ext = max(0, round(detector._EXTEND_S * fps))
    nuclei = keep_runs_ref(steady, min_voiced)
    near = binary_dilation(nuclei, structure=np.ones(2 * ext + 1, bool)) if ext else nuclei
    whisper = shaped & ~near
    whisper = whisper | binary_closing(whisper, structure=np.ones(3, bool))
    whisper = keep_runs_ref(whisper, max(1, round(detector._MIN_WHISPER_S * fps)))

    def expand(seeds: np.ndarray) -> np.ndarray:
        speech = seeds.copy()
        if ext:
            speech |= active & binary_dilation(seeds, structure=np.ones(2 * ext + 1, bool))
        gap = max(1, round(detector._GAP_S * fps))
        speech |= binary_closing(speech, structure=np.ones(gap, bool))
        hang = round(detector._HANGOVER_S * fps)
        if hang:
            speech = binary_dilation(speech, structure=hangover_kernel(hang))
        return np.asarray(speech)

    return nuclei, near, expand(nuclei), expand(nuclei | whisper)


@pytest.mark.parametrize("fps", [100.0, 50.0, 125.0, 200.0, 33.3])
def test_mask_programs_equal_the_scipy_chain(fps: float) -> None:
    rng = np.random.default_rng(int(fps))
    lengths = _lengths(fps)
    runner = _kernels().run
    for _ in range(60):
        n = int(rng.integers(1, 700))
        steady, shaped, active = (random_mask(rng, n) for _ in range(3))
        nuclei, near, voiced, with_whisper = decide_ref(steady, shaped, active, fps)
        rows = np.zeros((_N_ROWS, n), bool)
        rows[_STEADY] = steady
        runner(rows, lengths.nuclei)
        np.testing.assert_array_equal(rows[_NUCLEI], nuclei)
        np.testing.assert_array_equal(rows[_NEAR], near)
        rows[_SHAPED] = shaped & ~rows[_NEAR]
        rows[_ACTIVE] = active
        runner(rows, lengths.expand)
        np.testing.assert_array_equal(rows[_VOICED], voiced)
        np.testing.assert_array_equal(rows[_WITH_WHISPER], with_whisper)


def test_programs_of_unit_lengths_are_identities() -> None:
    nuclei, _ = _mask_programs(1, 0, 1, 1, 0)
    rng = np.random.default_rng(3)
    x = random_mask(rng, 100)
    rows = np.zeros((_N_ROWS, 100), bool)
    rows[_STEADY] = x
    _kernels().run(rows, nuclei)
    np.testing.assert_array_equal(rows[_NUCLEI], x)
    np.testing.assert_array_equal(rows[_NEAR], x)


# ------------------------------------------------------------------ floor and smoothing
def stream_updates(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(frames, final) of a live stream's updates, then of its end (final == frames).

    While the call goes on the last frames are not final (their window is not heard in
    full); final reaching the frame count means the call is over.
    """
    out = []
    frames = 0
    while frames < n:
        frames = min(n, frames + int(rng.integers(1, 150)))
        out.append((frames, max(0, frames - int(rng.integers(1, 5)))))
    out.append((n, n))
    return out


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_running_extremes_equal_scipy_filters_for_every_origin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    extreme = _kernels().extreme
    for _ in range(40):
        n = int(rng.integers(1, 500))
        size = int(rng.integers(1, 200))
        x = np.round(rng.standard_normal((n, 2)) * 3).astype(np.float32)  # with ties
        origin = int(rng.integers(-(size // 2), (size - 1) // 2 + 1))
        lo = int(rng.integers(0, n))
        for is_max, scipy_filter in ((False, minimum_filter1d), (True, maximum_filter1d)):
            out = np.full((n, 2), np.float32(np.nan))
            extreme(x, out, lo, size, size // 2 + origin, is_max)
            want = scipy_filter(x, size, axis=0, mode="nearest", origin=origin)
            np.testing.assert_array_equal(out[lo:], want[lo:])
            assert np.isnan(out[:lo]).all()  # frames before lo untouched


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_floor_equals_grey_opening_in_batch_and_stream(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(20):
        n = int(rng.integers(1, 900))
        size = int(rng.integers(3, 200))
        # Smooth-ish energies with plateaus (ties) and bursts.
        e_db = np.cumsum(rng.standard_normal((n, 2)), axis=0).astype(np.float32)
        e_db[rng.random(n) < 0.2] = np.float32(-60.0)
        ref = np.stack([grey_opening(e_db[:, c], size=size, mode="nearest") for c in range(2)], 1)
        memo = VadMemo()
        memo.grow(n)
        memo._db_done = n
        np.testing.assert_array_equal(noise._floor(memo, e_db, n, size=size), ref)
        memo = VadMemo()
        memo.grow(n)
        for frames, final in stream_updates(n, rng):
            memo._db_done = final  # e_db of the frames after final may still change
            part = e_db[:frames].copy()
            part[final:] += np.float32(rng.standard_normal())  # provisional values
            got = noise._floor(memo, part, final, size=size)
            want = [grey_opening(part[:, c], size=size, mode="nearest") for c in range(2)]
            np.testing.assert_array_equal(got, np.stack(want, 1))


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_smoothed_energy_is_uniform_filter1d_to_rounding_and_position_free(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for fps in (100.0, 160.0, 40.0, 25.0):
        lengths = _lengths(fps)
        size = sum(lengths.smooth) + 1
        scale = np.float32(4.0 / 256**2)
        for _ in range(10):
            n = int(rng.integers(1, 500))
            sums = (rng.random((n, 2)) * 10 ** rng.uniform(-6, 4, (n, 1))).astype(np.float32)
            memo = VadMemo()
            memo.grow(n)
            memo._sums = sums.copy()
            batch = noise._smoothed_db(memo, n, n, scale=scale, lengths=lengths).copy()
            ref = 10.0 * np.log10(uniform_filter1d(sums, size, axis=0) * scale + noise._EPS)
            np.testing.assert_allclose(batch, ref, rtol=0, atol=1e-4)  # dB, float rounding
            # A stream that settles frames bit by bit ends exactly where the batch does.
            memo = VadMemo()
            memo.grow(n)
            memo._sums = sums.copy()
            for frames, final in stream_updates(n, rng):
                got = noise._smoothed_db(memo, frames, final, scale=scale, lengths=lengths)
                memo_b = VadMemo()
                memo_b.grow(frames)
                memo_b._sums = sums[:frames].copy()
                want = noise._smoothed_db(memo_b, frames, frames, scale=scale, lengths=lengths)
                np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ noise estimate
def test_energy_keys_sort_like_energy_then_frame() -> None:
    rng = np.random.default_rng(0)
    e = rng.choice(np.array([-100.0, -3.5, -1e-30, 0.0, 1e-30, 2.5, 7.0], np.float32), 5000)
    e = np.concatenate([e, (rng.standard_normal(5000) * 40).astype(np.float32)])
    keys = noise._energy_keys(e, 17)
    order = np.lexsort((np.arange(e.size), e))
    np.testing.assert_array_equal(np.argsort(keys), order)
    np.testing.assert_array_equal(keys & noise._FRAME_BITS, np.arange(17, 17 + e.size))
    # -0.0 (which 10 * log10 never gives) ranks just below +0.0.
    zeros = noise._energy_keys(np.array([0.0, -0.0, -1e-30], np.float32), 0)
    assert zeros[2] < zeros[1] < zeros[0]


def noise_ref(P_low: np.ndarray, e_db: np.ndarray, m: int) -> np.ndarray:
    """Mean low-band spectrum of the q quietest of the first m frames (ties: earlier first)."""
    q = max(1, int(noise._NOISE_QUANTILE * m))
    quiet = np.lexsort((np.arange(m), e_db[:m]))[:q]
    return np.asarray(P_low[:, quiet].astype(np.float64).mean(axis=1))


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_block_noise_is_the_quiet_share_mean_and_a_stream_equals_the_batch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    block, reach = 100, 3
    for _ in range(3):
        n = int(rng.integers(50, 4000))
        # A background that gets louder, then quieter (the quiet share's boundary moves
        # both ways), with ties.
        e_db = (rng.standard_normal(n) * 3 + np.linspace(0, 1, n) * rng.uniform(-40, 40)).astype(
            np.float32
        )
        e_db[rng.random(n) < 0.05] = np.float32(-70.0)
        P = (rng.random((120, n)) * 10 ** rng.uniform(-5, 1, (1, n))).astype(np.float32)
        low = slice(4, 58)
        last = (n - 1) // block
        memo = VadMemo()
        memo._db_done = n
        noise._block_noise(P, low, e_db, last, block=block, reach=reach, final=n, memo=memo)
        for k in range(last + 1):
            m = max(min((k + 1) * block - noise._NOISE_MARGIN, n), 1)
            np.testing.assert_allclose(
                memo._noise[k], noise_ref(P[low], e_db, m), rtol=2e-6, atol=1e-30
            )
        batch = memo._noise[: last + 1].copy()
        # Live: blocks are asked for as frames arrive; unsettled ones are undone.
        live = VadMemo()
        for frames, final in stream_updates(n, rng):
            live._db_done = final
            k = int(rng.integers(0, (frames - 1) // block + 1))
            noise._block_noise(
                P[:, :frames], low, e_db, k, block=block, reach=reach, final=final, memo=live
            )
            # A block's estimate equals the recording's that ends here, bit for bit.
            if k >= live._noise_done:
                memo_b = VadMemo()
                memo_b._db_done = frames
                noise._block_noise(
                    P[:, :frames], low, e_db, k, block=block, reach=reach, final=frames, memo=memo_b
                )
                np.testing.assert_array_equal(live._noise[k], memo_b._noise[k])
        noise._block_noise(P, low, e_db, last, block=block, reach=reach, final=n, memo=live)
        np.testing.assert_array_equal(live._noise[: last + 1], batch)
