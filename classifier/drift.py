"""Drift: how the calls a model scores differ from the calls it was trained on.

A model card's ``reference`` (:func:`make_reference`; written by ``callsift train``, or
added to a model folder by ``callsift model reference``) keeps the distribution of a few
of the model's main features over its training calls, in groups (:data:`DRIFT_GROUPS`),
as decile bins and the share of calls in each, and the distribution of its scores and
its flag rates on held-out calls. :func:`compare` sets the calls scored since (the
service's rolling window) against it:

- a population stability index (PSI) per feature, and per group the largest of its
  features': below :data:`PSI_WATCH` the calls look like the training calls, from
  :data:`PSI_WATCH` worth watching, from :data:`PSI_SHIFT` shifted (the common
  convention for PSI over deciles);
- each flag's rate (prank, ghost) against the held-out rate: shifted when it is at least
  :data:`FLAG_RATE_RATIO` times higher or lower **and** a two-sided Fisher exact test of
  the two counts puts it beyond chance (p below :data:`FLAG_RATE_ALPHA`);
- no judgment below ``min_calls`` calls (:data:`MIN_CALLS`): with fewer, PSI over ten
  bins is mostly sampling noise (docs/model.md, "Drift").

Pure computation on arrays and mappings: no database, no web.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS

#: Feature groups watched for drift, each a few of the model's main features.
DRIFT_GROUPS: dict[str, tuple[str, ...]] = {
    "silence_speech": ("speech_ratio", "longest_silence_ratio", "first_speech_s"),
    "level": ("dynamic_range_db", "snr_db", "noise_floor_rel_db"),
    "voice_pitch": ("voiced_share", "pitch_median_hz", "pitch_std_semitones"),
    "handling_spectral": ("muffled_db", "flatness_mean", "centroid_mean"),
    "history": ("hist_calls_30d", "hist_has_history"),
    "duration": ("audio_duration_s",),
}
#: Every watched feature, in group order: what the service keeps of each scored call.
MONITORED_FEATURES: tuple[str, ...] = tuple(f for g in DRIFT_GROUPS.values() for f in g)
#: Scores whose held-out distribution the reference keeps.
SCORES: tuple[str, ...] = ("p_prank", "p_ghost")
#: What a flag points at; ``possible_prank`` and ``likely_prank`` both count as prank.
FLAG_KINDS: tuple[str, ...] = ("prank", "ghost")

PSI_WATCH = 0.1
PSI_SHIFT = 0.25
FLAG_RATE_RATIO = 2.0
FLAG_RATE_ALPHA = 0.01
MIN_CALLS = 200
#: Share an empty bin counts as in PSI (its log would be infinite).
PSI_FLOOR = 1e-4
#: Format of the card's ``reference``; another number is not read.
REFERENCE_VERSION = 1
_QUANTILES = np.linspace(0.1, 0.9, 9)
#: The one warning the service shows when the calls or flags have moved.
ADVICE = "review thresholds or adapt"


def flag_kind(flag: str | None) -> str | None:
    """``prank`` or ``ghost`` for a flag that points at one (any level), else None."""
    if not flag:
        return None
    for kind in FLAG_KINDS:
        if flag.endswith(f"_{kind}"):
            return kind
    return None


def monitored_values(features: Mapping[str, float]) -> dict[str, float | None]:
    """The watched features of one scored call, a missing or non-finite value as None
    (what the service stores beside the score)."""
    out: dict[str, float | None] = {}
    for name in MONITORED_FEATURES:
        value = features.get(name)
        try:
            v = float(value) if value is not None else math.nan
        except (TypeError, ValueError):
            v = math.nan
        out[name] = v if math.isfinite(v) else None
    return out


# -- histograms ----------------------------------------------------------------------------


def _finite(values: Any) -> np.ndarray:
    return np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=float)


def bin_shares(values: Any, edges: Sequence[float]) -> tuple[np.ndarray, int]:
    """Counts of ``values`` in the bins ``edges`` cut, the missing values last.

    Bins are ``(-inf, e0], (e0, e1], ..., (e_last, inf)``: ``len(edges) + 2`` counts with
    the missing (NaN or None) one. Returns the counts and the number of values.
    """
    v = _finite(values)
    missing = ~np.isfinite(v)
    idx = np.searchsorted(np.asarray(edges, dtype=float), v[~missing], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    return np.append(counts, float(missing.sum())), int(v.size)


def histogram(values: Any) -> dict[str, Any]:
    """Decile bin edges of ``values`` (duplicates merged: a value held by many calls is
    one edge) and the share of values in each bin and missing."""
    v = _finite(values)
    finite = v[np.isfinite(v)]
    edges = (
        sorted({round(float(e), 6) for e in np.quantile(finite, _QUANTILES)}) if finite.size else []
    )
    counts, n = bin_shares(v, edges)
    if n == 0:
        raise InvalidParameterError("no calls to take a reference distribution from")
    shares = counts / n
    return {
        "edges": edges,
        "proportions": [round(float(s), 6) for s in shares[:-1]],
        "missing": round(float(shares[-1]), 6),
    }


def psi(expected: Sequence[float] | np.ndarray, observed: Sequence[float] | np.ndarray) -> float:
    """Population stability index of ``observed`` shares against ``expected`` ones, bin by
    bin: sum of (o - e) * ln(o / e), an empty bin counting as :data:`PSI_FLOOR`."""
    e = np.maximum(np.asarray(expected, dtype=float), PSI_FLOOR)
    o = np.maximum(np.asarray(observed, dtype=float), PSI_FLOOR)
    if e.shape != o.shape:
        raise InvalidParameterError(f"{e.size} expected shares for {o.size} observed")
    return float(np.sum((o - e) * np.log(o / e)))


def histogram_psi(ref: Mapping[str, Any], values: Any) -> float:
    """PSI of ``values`` against a :func:`histogram` of the reference."""
    counts, n = bin_shares(values, ref["edges"])
    if n == 0:
        raise InvalidParameterError("no values to compare")
    expected = [*ref["proportions"], ref["missing"]]
    return psi(expected, counts / n)


def level(value: float | None) -> str | None:
    """``ok``, ``watch`` or ``shift`` for a PSI (None: not judged)."""
    if value is None:
        return None
    return "shift" if value >= PSI_SHIFT else "watch" if value >= PSI_WATCH else "ok"


# -- the reference -------------------------------------------------------------------------


def flag_rates(flags: Sequence[Any]) -> dict[str, float]:
    """Share of ``flags`` pointing at each of :data:`FLAG_KINDS` (0 without flags)."""
    kinds = [flag_kind(f) if isinstance(f, str) else None for f in flags]
    n = len(kinds)
    return {k: round(sum(x == k for x in kinds) / n, 6) if n else 0.0 for k in FLAG_KINDS}


def make_reference(
    train_calls: pd.DataFrame, scored: pd.DataFrame, *, source: str
) -> dict[str, Any]:
    """The card's ``reference``: watched features over ``train_calls`` (whole calls, one
    row each), scores and flag rates over ``scored`` (held-out calls: ``p_prank``,
    ``p_ghost``, ``flag``, and ``label`` when known).

    A watched feature the table lacks is left out (the service then judges its group on
    the others).
    """
    if len(train_calls) == 0 or len(scored) == 0:
        raise InvalidParameterError(
            f"a drift reference needs calls: {len(train_calls)} training calls, "
            f"{len(scored)} scored calls"
        )
    features = {f: histogram(train_calls[f]) for f in MONITORED_FEATURES if f in train_calls}
    flags = scored["flag"].tolist()
    by_class: dict[str, dict[str, Any]] = {}
    if "label" in scored:
        labels = scored["label"].fillna("").astype(str).to_numpy()
        for label in LABELS:
            mask = labels == label
            if mask.any():
                by_class[label] = {
                    "calls": int(mask.sum()),
                    **flag_rates(scored.loc[mask, "flag"].tolist()),
                }
    return {
        "version": REFERENCE_VERSION,
        "source": source,
        "groups": {g: list(fs) for g, fs in DRIFT_GROUPS.items()},
        "features": {"calls": len(train_calls), "histograms": features},
        "scores": {
            "calls": len(scored),
            "histograms": {s: histogram(scored[s]) for s in SCORES},
            "flag_rates": flag_rates(flags),
            "flag_rates_by_class": by_class,
        },
    }


def check_reference(reference: Any) -> dict[str, Any]:
    """``reference`` if it is one this code reads, else InvalidParameterError naming the
    problem (a card edited by hand, a newer format)."""
    if not isinstance(reference, dict):
        raise InvalidParameterError("the model card's drift reference is not an object")
    if reference.get("version") != REFERENCE_VERSION:
        raise InvalidParameterError(
            f"the model card's drift reference has format {reference.get('version')!r}; "
            f"this callsift reads format {REFERENCE_VERSION}"
        )
    try:
        hists = [
            *reference["features"]["histograms"].values(),
            *reference["scores"]["histograms"].values(),
        ]
        for h in hists:
            if len(h["proportions"]) != len(h["edges"]) + 1 or not 0 <= h["missing"] <= 1:
                raise ValueError("proportions do not match the bin edges")
        rates = reference["scores"]["flag_rates"]
        for kind in FLAG_KINDS:
            if not 0 <= float(rates[kind]) <= 1:
                raise ValueError(f"flag rate of {kind} is not a share")
        int(reference["scores"]["calls"])
        dict(reference["groups"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidParameterError(
            f"the model card's drift reference is unreadable: {type(exc).__name__}: {exc}"
        ) from exc
    return reference


# -- comparing -----------------------------------------------------------------------------


def flag_rate_test(
    flagged: int, calls: int, reference: float, reference_calls: int
) -> dict[str, Any]:
    """Whether ``flagged`` of ``calls`` is a shifted rate against ``reference`` (a rate
    measured on ``reference_calls``): the ratio, and a two-sided Fisher exact test of the
    two counts (the held-out rate is itself measured on a few hundred calls, or fewer
    for a centre's model; a test against it as if exact would see shifts in its noise).

    For the ratio, a reference rate of 0 is taken as half a call in ``reference_calls``
    (it was below one in that many).
    """
    from scipy.stats import fisher_exact  # scipy.stats takes a while to import

    n_ref = max(int(reference_calls), 1)
    k_ref = min(max(round(float(reference) * n_ref), 0), n_ref)
    rate = flagged / calls
    ratio = rate / max(float(reference), 0.5 / n_ref)
    table = [[flagged, calls - flagged], [k_ref, n_ref - k_ref]]
    p_value = float(fisher_exact(table, alternative="two-sided").pvalue)
    far = ratio >= FLAG_RATE_RATIO or ratio <= 1 / FLAG_RATE_RATIO
    return {
        "rate": round(rate, 6),
        "ratio": round(ratio, 4),
        "p_value": p_value,
        "shifted": bool(far and p_value < FLAG_RATE_ALPHA),
    }


def thresholds(min_calls: int) -> dict[str, float]:
    """The judgment's thresholds, as reported beside it."""
    return {
        "psi_watch": PSI_WATCH,
        "psi_shift": PSI_SHIFT,
        "flag_rate_ratio": FLAG_RATE_RATIO,
        "flag_rate_alpha": FLAG_RATE_ALPHA,
        "min_calls": float(min_calls),
    }


def compare(
    reference: Mapping[str, Any] | None,
    *,
    features: Mapping[str, Any],
    scores: Mapping[str, Any],
    flags: Sequence[str | None],
    min_calls: int = MIN_CALLS,
) -> dict[str, Any]:
    """Drift of a window of scored calls against a model's reference.

    Parameters
    ----------
    reference : mapping or None
        The card's ``reference`` (None: the model has none).
    features : mapping
        Per watched feature, its value for each call of the window (None or NaN when
        missing); a feature not given, or given for fewer than ``min_calls`` calls (calls
        stored without their features), is not judged.
    scores : mapping
        ``p_prank`` and ``p_ghost`` of each call.
    flags : sequence
        The flag of each call (:data:`classifier.model.FLAGS`).
    min_calls : int, keyword-only
        Fewer calls are not judged (``insufficient_data``).

    Returns
    -------
    dict
        ``status`` (``ok``, ``warning``, ``insufficient_data``, ``no_reference``),
        ``warning`` (plain text or None), ``calls``, ``min_calls``, ``groups`` (per
        group: ``psi``, the largest of its features', ``level`` and ``features``),
        ``scores`` (PSI per score), ``flag_rates`` (per flag: rate, reference, ratio,
        Fisher p-value, ``shifted``) and ``thresholds``. PSIs and tests are None
        below ``min_calls``.
    """
    if min_calls < 1:
        raise InvalidParameterError(f"min_calls must be 1 or more; got {min_calls}")
    n = len(flags)
    out: dict[str, Any] = {
        "status": "no_reference",
        "warning": None,
        "calls": n,
        "min_calls": int(min_calls),
        "groups": [],
        "scores": [],
        "flag_rates": [],
        "thresholds": thresholds(min_calls),
    }
    if reference is None:
        return out
    ref = check_reference(reference)
    judged = n >= min_calls
    hists = ref["features"]["histograms"]
    for group, names in ref["groups"].items():
        per: dict[str, float | None] = {}
        for name in names:
            if name in hists and name in features:
                values = features[name]
                enough = judged and len(values) >= min_calls
                per[name] = round(histogram_psi(hists[name], values), 4) if enough else None
        psis = [v for v in per.values() if v is not None]
        top = max(psis) if psis else None
        out["groups"].append({"group": group, "psi": top, "level": level(top), "features": per})
    for name, hist in ref["scores"]["histograms"].items():
        value = round(histogram_psi(hist, scores[name]), 4) if judged and name in scores else None
        out["scores"].append({"score": name, "psi": value, "level": level(value)})
    counts = {k: sum(flag_kind(f) == k for f in flags) for k in FLAG_KINDS}
    for kind in FLAG_KINDS:
        reference_rate = float(ref["scores"]["flag_rates"][kind])
        row: dict[str, Any] = {
            "flag": kind,
            "calls": n,
            "flagged": counts[kind],
            "rate": round(counts[kind] / n, 6) if n else None,
            "reference": reference_rate,
            "ratio": None,
            "p_value": None,
            "shifted": False,
        }
        if judged:
            row.update(flag_rate_test(counts[kind], n, reference_rate, int(ref["scores"]["calls"])))
        out["flag_rates"].append(row)
    if not judged:
        out["status"] = "insufficient_data"
        return out
    shifted_groups = [g["group"] for g in out["groups"] if g["level"] == "shift"] + [
        s["score"] for s in out["scores"] if s["level"] == "shift"
    ]
    flags_moved = any(r["shifted"] for r in out["flag_rates"])
    out["status"] = "warning" if flags_moved or shifted_groups else "ok"
    out["warning"] = warning_text(flags_moved, shifted_groups)
    return out


def warning_text(flags_moved: bool, shifted: Sequence[str]) -> str | None:
    """The plain warning: what moved, and what to do about it."""
    calls = f"calls differ from the model's training calls ({', '.join(shifted)})"
    if flags_moved and shifted:
        return f"flag rates have shifted and {calls}: {ADVICE}"
    if flags_moved:
        return f"flag rates have shifted: {ADVICE}"
    if shifted:
        return f"{calls}: {ADVICE}"
    return None
