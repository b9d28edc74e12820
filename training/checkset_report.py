"""The real check set's summary tables (``bench/real_checkset.py summary``): flags per
class, scenario, channel and what is behind an emergency caller.

Kept apart from :mod:`training.realcalls`, whose code stamps the training corpora it
composes: a change to the report must not make them stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.realcalls_sources import LABELS

__all__ = ["summary_tables"]


def summary_tables(manifest: Path, evaluation: Path) -> str:
    """Markdown: ROC-AUC, share of each class flagged (any flag, own flag) and per
    scenario, whole calls and, when evaluated with --prefix, after N seconds heard."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    man = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    lines: list[str] = []
    views = [("whole", pd.read_csv(evaluation / "scores.csv"))]
    pre = evaluation / "scores_prefix.csv"
    if pre.exists():
        # A call no longer than the prefix counts with its whole-call score, as in
        # callsift evaluate's own early-warning table.
        p = pd.read_csv(pre)
        whole_rows = p[p["prefix_s"].isna()]
        for s in sorted(p["prefix_s"].dropna().unique()):
            cut = p[p["prefix_s"] == s]
            rest = whole_rows[~whole_rows["call_id"].isin(cut["call_id"])]
            views.append((f"{s:g} s", pd.concat([cut, rest])))
    lines.append(
        "| heard | ghost ROC-AUC | prank ROC-AUC | emergency flagged | non_emergency "
        "flagged | prank flagged | ghost flagged | prank as prank | ghost as ghost |"
    )
    lines.append("|" + "---|" * 9)
    rows = [(name, sc, "all") for name, sc in views]
    rows += [(name, sc, "mono") for name, sc in views]
    for name, sc, part in rows:
        d = man[["call_id", "label", "channels"]].merge(sc, on="call_id", how="inner")
        if part == "mono":
            d = d[d["channels"] == "mono"]
            name = f"{name}, mono only"
        flagged = d["flag"].astype(str) != "none"
        cells = []
        for cls in ("ghost", "prank"):
            y = (d["label"] == cls).to_numpy()
            cells.append(
                f"{roc_auc_score(y, d[f'p_{cls}']):.3f}" if 0 < y.sum() < y.size else "n/a"
            )
        for cls in LABELS:
            m = d["label"] == cls
            cells.append(f"{flagged[m].mean():.1%} ({int(flagged[m].sum())}/{int(m.sum())})")
        for cls in ("prank", "ghost"):
            m = d["label"] == cls
            own = d["flag"].astype(str).str.endswith(cls)
            cells.append(f"{own[m].mean():.1%}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    whole = man.merge(views[0][1], on="call_id")
    lines += [
        "",
        "| label | scenario | calls | flagged as its class | mean p(class) |",
        "|---|---|---|---|---|",
    ]
    for (lab, scn), g in whole[whole["label"].isin(["prank", "ghost"])].groupby(
        ["label", "scenario"]
    ):
        own = g["flag"].astype(str).str.endswith(str(lab))
        lines.append(
            f"| {lab} | {scn} | {len(g)} | {own.mean():.1%} | {g[f'p_{lab}'].mean():.2f} |"
        )
    lines += ["", "| channels | ghost calls | ghost flagged as ghost |", "|---|---|---|"]
    for ch, g in whole[whole["label"] == "ghost"].groupby("channels"):
        lines.append(
            f"| {ch} | {len(g)} | {g['flag'].astype(str).str.endswith('ghost').mean():.1%} |"
        )
    lines += _emergency_by_background(whole)
    return "\n".join(lines)


#: Source files of an infant crying (the manifest's ``source_files``).
CRY_SOURCES = ("infant_cry", "crying_baby")
#: What may sit behind an emergency caller, by the files it came from (first match).
_BEHIND = (("an infant crying", CRY_SOURCES), ("a siren", ("siren",)))


def _emergency_by_background(whole: Any) -> list[str]:
    """Markdown: emergency calls flagged by what is behind the caller (an infant crying
    lifts p_prank on real audio), with the ids of those flagged."""
    em = whole[whole["label"] == "emergency"]
    if em.empty:
        return []

    def behind(row: Any) -> str:
        files = str(row.get("source_files", ""))
        for name, keys in _BEHIND:
            if any(k in files for k in keys):
                return name
        return "other sound" if "background" in str(row.get("background", "")) else "nothing"

    kinds = em.apply(behind, axis=1)
    lines = [
        "",
        "| behind an emergency caller | calls | flagged | median p_prank | flagged calls |",
        "|---|---|---|---|---|",
    ]
    for name in [n for n, _ in _BEHIND] + ["other sound", "nothing"]:
        g = em[kinds == name]
        if g.empty:
            continue
        flagged = g[g["flag"].astype(str) != "none"]
        ids = ", ".join(f"{r.call_id} ({r.flag})" for r in flagged.itertuples()) or "none"
        lines.append(
            f"| {name} | {len(g)} | {len(flagged)} | {g['p_prank'].median():.3f} | {ids} |"
        )
    return lines
