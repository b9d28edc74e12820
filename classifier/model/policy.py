"""Flag policy: thresholds that keep the emergency budget, flags from probabilities, the
early-ghost safety cap, and the bounds that show a budget on few calls."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from classifier.formats import LABELS

#: Flag levels, weakest first; ``none`` is the absence of a flag.
FLAGS: tuple[str, ...] = (
    "none",
    "possible_prank",
    "likely_prank",
    "possible_ghost",
    "likely_ghost",
)
#: The classes a flag can point at, and the class whose false flags are limited.
FLAGGED_CLASSES: tuple[str, ...] = ("prank", "ghost")
PROTECTED_CLASS = "emergency"
_LEVELS: tuple[str, ...] = ("possible", "likely")
_SPLIT_GRID = np.linspace(0.0, 1.0, 11)


def flag_scores(proba: np.ndarray, *, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """The scores flag thresholds apply to, per flagged class.

    Where ghost is likelier than prank, the ghost score is the call's nuisance
    probability ``p_prank + p_ghost``: a silent line that the model cannot place
    between a ghost call and a silent prank is still a line with no caller to help, and
    is flagged as a ghost call. Elsewhere each class keeps its own probability: a prank
    flag says something of the caller, and is raised on the prank probability alone.

    Parameters
    ----------
    proba : ndarray, shape (n_calls, n_classes)
    classes : sequence of str, keyword-only
        Column order of ``proba``.

    Returns
    -------
    dict
        ``{"prank": ndarray of shape (n_calls,), "ghost": ...}``.
    """
    col = {c: i for i, c in enumerate(classes)}
    p_prank, p_ghost = proba[:, col["prank"]], proba[:, col["ghost"]]
    return {"prank": p_prank, "ghost": np.where(p_ghost > p_prank, p_prank + p_ghost, p_ghost)}


def budget_threshold(scores: np.ndarray, allowed: int, floor: float) -> float:
    """Smallest threshold (at least ``floor``) flagging at most ``allowed`` of ``scores``."""
    if scores.size == 0:
        return floor
    s = np.sort(scores)[::-1]
    if allowed >= s.size:
        return floor
    # Strictly above the (allowed+1)-th highest score, so ties never exceed the budget.
    return float(max(floor, np.nextafter(s[allowed], np.inf)))


def _best_split(
    score: dict[str, np.ndarray],
    y: np.ndarray,
    among: np.ndarray,
    allowed: int,
    floors: dict[str, float],
) -> dict[str, float]:
    """Prank and ghost thresholds (each at least its floor) flagging at most ``allowed``
    of the rows ``among``, the allowance split between the two classes where the most
    prank and ghost calls are flagged as their class."""
    best: tuple[float, dict[str, float]] | None = None
    for share in _SPLIT_GRID:
        a_prank = int(np.floor(share * allowed + 1e-9))
        a = {"prank": a_prank, "ghost": allowed - a_prank}
        t = {
            cls: budget_threshold(score[cls][among], a[cls], floors[cls]) for cls in FLAGGED_CLASSES
        }
        caught = 0.0
        for cls in FLAGGED_CLASSES:
            mask = y == cls
            if mask.any():
                caught += float((score[cls][mask] >= t[cls]).mean())
        if best is None or caught > best[0] + 1e-12:
            best = (caught, t)
    assert best is not None
    return best[1]


def choose_thresholds(
    proba: np.ndarray,
    y: np.ndarray,
    *,
    classes: Sequence[str],
    targets: dict[str, float],
    floors: dict[str, float],
) -> dict[str, dict[str, float]]:
    """Flag thresholds that keep the share of emergency calls flagged under each target.

    At each level a call is flagged when its flag score (:func:`flag_scores`) of prank
    or of ghost reaches that class's threshold. The level's budget of emergency calls
    is split between the two classes where that split catches the most prank and ghost
    calls; a call counts once however many classes flag it, so the union respects the
    target.

    Parameters
    ----------
    proba : ndarray, shape (n_calls, n_classes)
        Out-of-sample probabilities.
    y : ndarray of str, shape (n_calls,)
        True labels.
    classes : sequence of str, keyword-only
        Column order of ``proba``.
    targets : dict, keyword-only
        Level name (``possible``, ``likely``) to the largest share of emergency calls
        it may flag.
    floors : dict, keyword-only
        Level name to the lowest probability that may raise that flag.

    Returns
    -------
    dict
        ``{level: {"prank": t, "ghost": t}}``.
    """
    score = flag_scores(proba, classes=classes)
    protected = y == PROTECTED_CLASS
    n_protected = int(protected.sum())
    out: dict[str, dict[str, float]] = {}
    for level in _LEVELS:
        allowed = int(np.floor(targets[level] * n_protected + 1e-9))
        floor = {cls: floors[level] for cls in FLAGGED_CLASSES}
        out[level] = _best_split(score, y, protected, allowed, floor)
    # A likely flag must never be easier to raise than a possible one.
    for cls in FLAGGED_CLASSES:
        out["likely"][cls] = max(out["likely"][cls], out["possible"][cls])
    return out


def cap_non_emergency(
    thresholds: dict[str, dict[str, float]],
    proba: np.ndarray,
    y: np.ndarray,
    *,
    classes: Sequence[str],
    target: float,
    confidence: float | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, float | int | None]]:
    """Thresholds raised, where needed, so that at most ``target`` of the non-emergency
    calls are flagged (at the ``possible`` level, so at ``likely`` too).

    The emergency budget sets thresholds from below; a centre whose few emergency calls
    leave them low would flag its non-emergency callers, real people asking for help of
    another kind. Thresholds only rise (emergency calls keep their protection). The
    allowance is split between prank and ghost where that keeps the most prank and ghost
    calls flagged, as in :func:`choose_thresholds`.

    Parameters
    ----------
    thresholds : dict
        From :func:`choose_thresholds`.
    proba : ndarray, shape (n_calls, n_classes)
    y : ndarray of str, shape (n_calls,)
    classes : sequence of str, keyword-only
    target : float, keyword-only
        Largest share of non-emergency calls flagged, in [0, 1].
    confidence : float or None, keyword-only
        With a confidence, the flags allowed are those whose one-sided Clopper-Pearson
        upper bound stays within ``target`` (:func:`allowed_flags`): thresholds set on
        these calls flag more of later ones. None: ``floor(target * n)``.

    Returns
    -------
    (dict, dict)
        The thresholds, and what they do on the non-emergency calls: ``calls``,
        ``allowed``, ``flagged`` before and after, ``target``.
    """
    score = flag_scores(proba, classes=classes)
    non = y == "non_emergency"
    n = int(non.sum())
    if confidence is None:
        allowed = int(np.floor(target * n + 1e-9))
    else:
        allowed = max(allowed_flags(n, target, confidence), 0)
    th = {lv: dict(t) for lv, t in thresholds.items()}

    def flagged(t: dict[str, float]) -> int:
        return int(
            ((score["prank"][non] >= t["prank"]) | (score["ghost"][non] >= t["ghost"])).sum()
        )

    before = flagged(th["possible"])
    info: dict[str, float | int | None] = {
        "target": float(target),
        "confidence": confidence,
        "calls": n,
        "allowed": allowed,
        "flagged_before": before,
        "flagged": before,
    }
    if n == 0 or before <= allowed:
        return th, info
    # Floors at the thresholds the emergency budget set: they only rise.
    th["possible"] = _best_split(score, y, non, allowed, th["possible"])
    for cls in FLAGGED_CLASSES:
        th["likely"][cls] = max(th["likely"][cls], th["possible"][cls])
    info["flagged"] = flagged(th["possible"])
    return th, info


def flags_from_proba(
    proba: np.ndarray, *, classes: Sequence[str], thresholds: dict[str, dict[str, float]]
) -> np.ndarray:
    """The flag of each call from its probabilities.

    Parameters
    ----------
    proba : ndarray, shape (n_calls, n_classes)
    classes : sequence of str, keyword-only
        Column order of ``proba``.
    thresholds : dict, keyword-only
        From :func:`choose_thresholds`.

    Returns
    -------
    ndarray of str, shape (n_calls,)
        One of :data:`FLAGS` per call: a class is flagged when its flag score
        (:func:`flag_scores`) reaches its threshold. When both classes pass, the
        stronger level wins, then the higher probability.
    """
    return _FLAG_NAMES[_flag_codes(proba, classes=classes, thresholds=thresholds)]


# A flag as a code: the level (0 none, 1 possible, 2 likely) of the winning class, plus 3
# when ghost wins. Codes cost a few array operations where strings cost a mask per flag.
_FLAG_NAMES = np.asarray(
    ["none", "possible_prank", "likely_prank", "none", "possible_ghost", "likely_ghost"],
    dtype=object,
)


def _flag_of(proba: list[float], thresholds: dict[str, dict[str, float]]) -> str:
    """:func:`flags_from_proba` of one row in LABELS order, in Python floats."""
    p_prank, p_ghost = proba[LABELS.index("prank")], proba[LABELS.index("ghost")]
    # As flag_scores: one IEEE addition, the same float as numpy's.
    score = {"prank": p_prank, "ghost": p_prank + p_ghost if p_ghost > p_prank else p_ghost}
    level = {}
    for cls in FLAGGED_CLASSES:
        s = score[cls]
        level[cls] = (
            2 if s >= thresholds["likely"][cls] else 1 if s >= thresholds["possible"][cls] else 0
        )
    lp, lg = level["prank"], level["ghost"]
    prank_wins = lp > lg or (lp == lg and p_prank >= p_ghost)
    return str(_FLAG_NAMES[lp if prank_wins else lg + 3])


def _flag_codes(
    proba: np.ndarray, *, classes: Sequence[str], thresholds: dict[str, dict[str, float]]
) -> np.ndarray:
    col = {c: i for i, c in enumerate(classes)}
    p = {cls: proba[:, col[cls]] for cls in FLAGGED_CLASSES}
    s = flag_scores(proba, classes=classes)
    level = {
        cls: np.where(s[cls] >= thresholds["likely"][cls], 2, s[cls] >= thresholds["possible"][cls])
        for cls in FLAGGED_CLASSES
    }
    prank_wins = (level["prank"] > level["ghost"]) | (
        (level["prank"] == level["ghost"]) & (p["prank"] >= p["ghost"])
    )
    return np.where(prank_wins, level["prank"], level["ghost"] + 3)


def cap_early_ghost(flags: np.ndarray, heard_s: np.ndarray, *, min_likely_s: float) -> np.ndarray:
    """The safety rule: before ``min_likely_s`` heard, a ghost flag is at most ``possible``.

    A caller silent for the first seconds is not yet a ghost call: a person in danger may
    need time to speak, or be unable to. Rows with an unknown time heard (NaN) count as
    early.

    Parameters
    ----------
    flags : ndarray of str, shape (n_calls,)
    heard_s : ndarray, shape (n_calls,)
        Seconds of audio heard when each row was scored.
    min_likely_s : float, keyword-only

    Returns
    -------
    ndarray of str, shape (n_calls,)
        A copy with ``likely_ghost`` lowered to ``possible_ghost`` on the early rows.
    """
    out = np.asarray(flags, dtype=object).copy()
    early = ~(np.asarray(heard_s, dtype=np.float64) >= min_likely_s)  # NaN is early
    out[early & (out == "likely_ghost")] = "possible_ghost"
    return out


def flag_rate_upper_bound(flagged: int, calls: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on the share of calls flagged, at
    ``confidence``, from ``flagged`` of ``calls`` (1.0 without calls)."""
    if calls <= 0 or flagged >= calls:
        return 1.0
    from scipy.stats import beta  # a second's import the service never needs

    return float(beta.ppf(confidence, flagged + 1, calls - flagged))


def allowed_flags(calls: int, target: float, confidence: float) -> int:
    """Most flagged calls, out of ``calls``, whose upper bound
    (:func:`flag_rate_upper_bound`) is still within ``target``; -1 when even none is not
    (too few calls to show the target: 0 of n has the bound 1 - (1 - confidence)^(1/n))."""
    k = -1
    while k + 1 < calls and flag_rate_upper_bound(k + 1, calls, confidence) <= target:
        k += 1
    return k
