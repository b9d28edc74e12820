"""The recipe of the default model shipped in ``models/default``.

``callsift build-default`` rebuilds it deterministically: the corpora below are a pure
function of (preset, calls, seed, real recordings), and training is seeded. The real
recordings of ``../shared/data`` (speech, handling sounds, backgrounds, music, cries,
laughter; never ``speech-nc/`` nor the hold-out list, see
:mod:`training.simulator.realbank`) are mixed into the training corpora by their role
when that folder is there; ``--sim-only`` builds from the simulator alone, for those
who do not have them. The acceptance and budget corpora stay simulated only, so the
simulated goals are checked as before.
The model is then checked on a corpus of a preset and seed it never saw (Purworejo), and
the acceptance figures are written into the model folder's README.

Why ship the model instead of training on first use: measured from a fresh clone, the
shipped model scores its first call seconds after installation, while simulating and
training this recipe takes about 15 minutes on 2 cores (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from classifier.artifact import DEFAULT_MODEL_DIR
from classifier.errors import InvalidParameterError
from training.evaluate import evaluate_manifest
from training.features import DEFAULT_PREFIXES
from training.simulate import simulate_corpus
from training.train import DEFAULT_PREFIX_WEIGHT, train


@dataclass(frozen=True)
class CorpusSpec:
    """One simulated corpus of the recipe."""

    name: str
    preset: str
    calls: int
    seed: int


#: Training corpora: varied presets, voices, noises, channels and call-taker shifts.
TRAIN_CORPORA: tuple[CorpusSpec, ...] = (
    CorpusSpec("bal3000", "balanced", 3000, 13),
    CorpusSpec("ken3000", "kendari-2025", 3000, 12),
    CorpusSpec("jak2000", "jakarta-2024", 2000, 14),
    CorpusSpec("ken3000b", "kendari-2025", 3000, 15),
    CorpusSpec("bal2000", "balanced", 2000, 16),
)
#: Acceptance corpus: a preset and a seed the model never trained on.
ACCEPTANCE_CORPUS = CorpusSpec("pur1200", "purworejo", 1200, 99)
#: Emergency-budget corpus: many emergency calls (500) of a seed the model never saw, each
#: also scored after its first seconds, for the share of them flagged at every time heard.
BUDGET_CORPUS = CorpusSpec("bal2000u", "balanced", 2000, 778)
#: The issue's goals on the acceptance corpus.
GOALS = {"ghost_roc_auc": 0.99, "prank_roc_auc": 0.95, "emergency_flagged_max": 0.01}
#: Seconds heard at which every call is also cut, for the early (streamed) scores.
PREFIXES: tuple[float, ...] = DEFAULT_PREFIXES
TRAIN_SETTINGS: dict[str, Any] = {
    "test_callers": 0.25,
    "test_after": 0.75,
    "seed": 0,
    "prefixes": PREFIXES,
    "prefix_weight": DEFAULT_PREFIX_WEIGHT,
}
_RECIPE_FILE = "recipe.json"


def _simulator_fingerprint() -> str:
    """Changes whenever the simulator's code does, so a stale corpus is never reused."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    data = (root / "simulator" / "data").glob("*.toml")  # the phrase banks
    for path in sorted([root / "simulate.py", *(root / "simulator").glob("*.py"), *data]):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


#: The shared real recordings, beside the project (see the README of that folder).
DEFAULT_REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def _real_fingerprint(real_dir: Path | None) -> str | None:
    """Changes with the trainable real files and the hold-out list."""
    if real_dir is None:
        return None
    from training.simulator.realbank import load_holdout, role_files

    files = role_files(real_dir, load_holdout())
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def _stamp(spec: CorpusSpec, real_dir: Path | None = None) -> dict[str, Any]:
    stamp = {**asdict(spec), "simulator": _simulator_fingerprint()}
    if real_dir is not None:
        stamp["real"] = _real_fingerprint(real_dir)
    return stamp


def _reusable(folder: Path, want: dict[str, Any], code: str) -> Path | None:
    """The manifest already built in ``folder`` when its recipe stamp is ``want``; None
    when nothing complete is there; an error when another recipe's calls are."""
    stamp = folder / _RECIPE_FILE
    if not ((folder / "manifest.csv").is_file() and stamp.is_file()):
        return None
    if json.loads(stamp.read_text()) == want:
        return folder / "manifest.csv"
    raise InvalidParameterError(
        f"{folder} holds other calls than the recipe's {want} (other settings, {code} or "
        "real recordings); remove it"
    )


def ensure_corpus(
    work: Path, spec: CorpusSpec, *, n_jobs: int, real_dir: Path | None = None
) -> Path:
    """The corpus of ``spec`` under ``work``, simulated unless an identical one is there."""
    folder = work / (spec.name if real_dir is None else f"{spec.name}-real")
    stamp = folder / _RECIPE_FILE
    found = _reusable(folder, _stamp(spec, real_dir), "simulator code")
    if found is not None:
        return found
    manifest = simulate_corpus(
        folder,
        preset=spec.preset,
        n_calls=spec.calls,
        seed=spec.seed,
        real_dir=real_dir,
        n_jobs=n_jobs,
    )
    stamp.write_text(json.dumps(_stamp(spec, real_dir)) + "\n")
    return manifest


@dataclass(frozen=True)
class RealCallsSpec:
    """Calls composed from trainable real recordings (:mod:`training.realcalls`)."""

    name: str
    calls: int
    seed: int
    min_per_class: int


#: With real recordings: calls whose every sound is a real recording (voices included),
#: composed as a centre records them, from the files training may use. They teach the
#: model what real voices, rooms and open lines sound like, which the simulator's
#: synthetic voices cannot, and they take part in choosing the flag thresholds.
REAL_TRAIN_CORPORA: tuple[RealCallsSpec, ...] = (
    RealCallsSpec("realcalls1200a", 1200, 201, 200),
    RealCallsSpec("realcalls1200b", 1200, 202, 200),
)


def _realcalls_stamp(spec: RealCallsSpec, real_dir: Path) -> dict[str, Any]:
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.glob("realcalls*.py")):  # realcalls.py and its two parts
        h.update(path.read_bytes())
    h.update(_simulator_fingerprint().encode())
    return {**asdict(spec), "code": h.hexdigest()[:16], "real": _real_fingerprint(real_dir)}


def ensure_real_calls(work: Path, spec: RealCallsSpec, real_dir: Path) -> Path:
    """The real-recording training calls of ``spec``, built unless identical ones are there."""
    from training.realcalls import build as build_real_calls

    folder = work / spec.name
    stamp = folder / _RECIPE_FILE
    want = _realcalls_stamp(spec, real_dir)
    found = _reusable(folder, want, "composer code")
    if found is not None:
        return found
    if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()
    manifest = build_real_calls(
        folder,
        data=real_dir,
        n_calls=spec.calls,
        seed=spec.seed,
        min_per_class=spec.min_per_class,
        pool="train",
        progress=True,
    )
    stamp.write_text(json.dumps(want) + "\n")
    return manifest


def real_sources(real_dir: Path | None) -> list[dict[str, Any]]:
    """Every real folder mixed into the training corpora: roles, files, licence."""
    if real_dir is None:
        return []
    from training.simulator.realbank import RealBank, sources_card

    return sources_card(RealBank.load(real_dir).sources)


def acceptance(metrics: dict[str, Any]) -> dict[str, Any]:
    """The acceptance figures of an evaluation and whether each goal is met."""
    per = metrics.get("per_class") or {}
    ghost = (per.get("ghost") or {}).get("roc_auc")
    prank = (per.get("prank") or {}).get("roc_auc")
    flagged = ((metrics.get("flags") or {}).get("possible") or {}).get("emergency")
    return {
        "ghost_roc_auc": ghost,
        "prank_roc_auc": prank,
        "emergency_flagged": flagged,
        "ghost_ok": ghost is not None and ghost >= GOALS["ghost_roc_auc"],
        "prank_ok": prank is not None and prank >= GOALS["prank_roc_auc"],
        "emergency_ok": flagged is not None and flagged <= GOALS["emergency_flagged_max"],
    }


def build_default(
    *,
    out: Path = DEFAULT_MODEL_DIR,
    work: Path = Path("runs/default-build"),
    n_jobs: int = 2,
    real_dir: Path | None = None,
) -> dict[str, Any]:
    """Simulate the recipe's corpora, train the default model and check it.

    Parameters
    ----------
    real_dir : Path or None, keyword-only
        The shared real recordings to mix into the training corpora (None: simulated
        only).

    Returns
    -------
    dict
        Acceptance figures on the unseen corpus (see :func:`acceptance`).

    Raises
    ------
    InvalidParameterError
        ``real_dir`` missing or holding no readable audio; nothing is written then.
    """
    if real_dir is not None:
        from training.simulator.realbank import RealBank

        # Refused before the work folder exists: a bad folder leaves nothing behind.
        RealBank.load(real_dir)
    work.mkdir(parents=True, exist_ok=True)
    manifests = [
        ensure_corpus(work, spec, n_jobs=n_jobs, real_dir=real_dir) for spec in TRAIN_CORPORA
    ]
    real_calls = [asdict(spec) for spec in REAL_TRAIN_CORPORA] if real_dir is not None else []
    if real_dir is not None:
        manifests += [ensure_real_calls(work, spec, real_dir) for spec in REAL_TRAIN_CORPORA]
    result = train(
        manifests,
        out,
        name="default",
        n_jobs=n_jobs,
        cache_dir=work / "feature-cache",
        card_extra={"real_sources": real_sources(real_dir), "real_calls": real_calls},
        # Thresholds keep the emergency budget on the real-recording calls alone too.
        domains=["sim"] * len(TRAIN_CORPORA) + ["real"] * len(real_calls),
        **TRAIN_SETTINGS,
    )
    check_manifest = ensure_corpus(work, ACCEPTANCE_CORPUS, n_jobs=n_jobs)
    check_dir = work / "acceptance"
    metrics, _ = evaluate_manifest(
        check_manifest,
        check_dir,
        model_dir=out,
        n_jobs=n_jobs,
        cache_dir=work / "feature-cache",
        prefixes=PREFIXES,
    )
    figures = acceptance(metrics)
    budget_metrics, _ = evaluate_manifest(
        ensure_corpus(work, BUDGET_CORPUS, n_jobs=n_jobs),
        work / "budget",
        model_dir=out,
        n_jobs=n_jobs,
        cache_dir=work / "feature-cache",
        prefixes=PREFIXES,
    )
    figures.update(emergency_budget(budget_metrics))
    _write_readme(out, result.card, figures, metrics, budget_metrics)
    return figures


def emergency_budget(metrics: dict[str, Any]) -> dict[str, Any]:
    """Share of emergency calls flagged at each time heard and whether each is in budget."""
    flagged = {
        k: v.get("emergency_flagged_possible") for k, v in (metrics.get("prefixes") or {}).items()
    }
    limit = GOALS["emergency_flagged_max"]
    return {
        "budget_flagged": flagged,
        "budget_ok": bool(flagged) and all(v is not None and v <= limit for v in flagged.values()),
    }


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}%"


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.4f}"


def _early_rows(m: dict[str, Any]) -> str:
    return "\n".join(
        f"| {'whole call' if k == 'whole' else k + ' s'} | {_pct(v.get('ghost_recall_possible'))} "
        f"| {_pct(v.get('prank_recall_possible'))} | {_pct(v.get('emergency_flagged_possible'))} |"
        for k, v in (m.get("prefixes") or {}).items()
    )


def _write_readme(
    out: Path, card: dict[str, Any], fig: dict[str, Any], m: dict[str, Any], b: dict[str, Any]
) -> None:
    held = card.get("metrics", {}).get("per_class", {})
    spec_lines = "\n".join(
        f"| {s.name} | {s.preset} | {s.calls} | {s.seed} |" for s in TRAIN_CORPORA
    )
    spec_lines += "".join(
        f"\n| {r['name']} | calls of real recordings (training pool, "
        f"`training/realcalls.py`), at least {r['min_per_class']} per class | {r['calls']} | "
        f"{r['seed']} |"
        for r in card.get("real_calls") or []
    )
    sources = card.get("real_sources") or []
    real_lines = (
        "Real recordings mixed into these corpora by their role (never `speech-nc/` nor the "
        "hold-out list `training/real_holdout.json`):\n\n| folder | role | files | licence |\n"
        "|---|---|---|---|\n"
        + "\n".join(
            f"| `{e['folder']}` | {', '.join(e['roles'])} | {e['files']} | {e['licence']} |"
            for e in sources
        )
        if sources
        else "Simulated only (`--sim-only`): no real recordings."
    )
    rec = m.get("recall_at_fpr") or {}
    acc = ACCEPTANCE_CORPUS
    rows = "\n".join(
        f"| {goal} | {target} | {measured} | {'yes' if ok else 'no'} |"
        for goal, target, measured, ok in (
            (
                "ghost ROC-AUC",
                f">= {GOALS['ghost_roc_auc']}",
                _num(fig["ghost_roc_auc"]),
                fig["ghost_ok"],
            ),
            (
                "prank ROC-AUC",
                f">= {GOALS['prank_roc_auc']}",
                _num(fig["prank_roc_auc"]),
                fig["prank_ok"],
            ),
            (
                "emergency calls flagged",
                f"<= {_pct(GOALS['emergency_flagged_max'])}",
                _pct(fig["emergency_flagged"]),
                fig["emergency_ok"],
            ),
        )
    )
    early_rows = _early_rows(m)
    budget_rows = _early_rows(b)
    bud = BUDGET_CORPUS
    n_emergency = (b.get("class_counts") or {}).get("emergency", "n/a")
    prank_recall = _pct((rec.get("prank") or {}).get("recall"))
    ghost_recall = _pct((rec.get("ghost") or {}).get("recall"))
    text = f"""# The default callsift model

Version `{card["version"]}`, created {card["created_at"]}, code `{card["code_version"]}`.
Machine-readable card: [card.json](card.json); held-out test report:
[report/report.md](report/report.md).

**Advice only.** The flag helps a call-taker; every call is answered and handled. A silent
caller may be a victim who cannot speak.

## Training data (rebuild with `callsift build-default`)

| corpus | preset | calls | seed |
|---|---|---|---|
{spec_lines}

{real_lines}

Split: {card["split"]["method"]}; {card["split"]["train_calls"]} train and
{card["split"]["test_calls"]} test calls. Held-out ROC-AUC: prank
{_num((held.get("prank") or {}).get("roc_auc"))}, ghost
{_num((held.get("ghost") or {}).get("roc_auc"))}.

## Acceptance on an unseen preset and seed

{acc.preset}, {acc.calls} calls, seed {acc.seed}:

| goal | target | measured | met |
|---|---|---|---|
{rows}

Recall at 1% of emergency calls flagged: prank {prank_recall}, ghost {ghost_recall}.

## Early warning: the first seconds of each call

The same calls scored after only their first seconds (a call no longer than that,
whole), at the model's flag thresholds (`possible` or stronger). Before
{card.get("min_likely_ghost_s", 10.0):g} s heard a ghost flag is at most `possible`: a
silent caller may be a person in danger who cannot speak yet.

| heard | ghost recall | prank recall | emergency calls flagged |
|---|---|---|---|
{early_rows}

## Emergency budget at every time heard

{bud.preset}, {bud.calls} calls, seed {bud.seed} (never trained on; {n_emergency}
emergency calls): at most {_pct(GOALS["emergency_flagged_max"])} of them flagged at
every time heard: {"met" if fig["budget_ok"] else "NOT met"}.

| heard | ghost recall | prank recall | emergency calls flagged |
|---|---|---|---|
{budget_rows}

## Limits

Trained on simulated calls (espeak-ng voices, synthetic noises and telephone channels,
with the real sounds listed above where given). Real calls differ; adapt to a centre's
own reviewed calls (`callsift adapt`) and compare with `callsift evaluate` before
relying on the scores. Measured on calls made of real recordings it never trained on
(`bench/real_checkset.py`, docs/benchmarks.md):

- **Prank calls from a number with no earlier prank are rarely flagged** (3-13% on five
  check sets, against 70-79% of those from a number with one). An adult reporting a
  fake incident sounds like a genuine caller; what the words say is not heard, and real
  laughter is not told from speech (the laughter features miss it).
- **A baby crying behind a genuine caller raises the prank score** (the emergency calls
  flagged as prank on the check sets, 2 of 300, both had one): a prank flag stays
  advisory.
- **Open lines with a radio or people talking in the room** are flagged less often than
  silent lines and pocket dials (about a third against four in five).
- A silent caller may be a person who cannot speak: no flag ever drops or blocks a call.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def build_default_command(
    out: Annotated[Path, typer.Option("--out", help="model folder")] = DEFAULT_MODEL_DIR,
    work: Annotated[Path, typer.Option("--work", help="folder for the simulated corpora")] = Path(
        "runs/default-build"
    ),
    jobs: Annotated[int, typer.Option("--jobs", help="worker processes")] = 2,
    real_dir: Annotated[
        Path | None,
        typer.Option(
            "--real-dir",
            help="real recordings to mix in by role (default: ../shared/data when present)",
        ),
    ] = None,
    sim_only: Annotated[
        bool, typer.Option("--sim-only", help="the simulator alone, no real recordings")
    ] = False,
) -> None:
    """Rebuild the default model from the simulator (and real recordings, by role) and
    check it on an unseen corpus."""
    if sim_only and real_dir is not None:
        raise InvalidParameterError("--sim-only and --real-dir exclude each other")
    if not sim_only and real_dir is None:
        if not DEFAULT_REAL_DIR.is_dir():
            raise InvalidParameterError(
                f"no real recordings at {DEFAULT_REAL_DIR}: give --real-dir, or --sim-only "
                "to build from the simulator alone"
            )
        real_dir = DEFAULT_REAL_DIR
    fig = build_default(out=out, work=work, n_jobs=jobs, real_dir=real_dir)
    typer.echo(json.dumps(fig, indent=2))
    if not fig["budget_ok"]:
        # Reported, not a gate: the acceptance goals are those of the unseen preset.
        typer.echo(
            "warning: more than 1% of the budget corpus's emergency calls are flagged at "
            "some time heard (see the model's README)",
            err=True,
        )
    if not (fig["ghost_ok"] and fig["prank_ok"] and fig["emergency_ok"]):
        typer.echo("the default model misses at least one goal", err=True)
        raise typer.Exit(1)
