"""Batched work over joblib worker processes with a progress bar, shared by the stages."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import typer
from joblib import Parallel, delayed

T = TypeVar("T")
R = TypeVar("R")

#: The environment variable ``--cluster`` falls back on (Dask's own name for it).
CLUSTER_ENV = "DASK_SCHEDULER_ADDRESS"
#: ``--cluster`` of simulate, features, train and evaluate (training.cluster).
CLUSTER_OPTION = typer.Option(
    "--cluster",
    envvar=CLUSTER_ENV,
    help=(
        "a Dask scheduler's address, e.g. tcp://10.0.0.5:8786: the work goes to its "
        "workers (audio and --cache on paths every worker shares; docs/model.md)"
    ),
)


def map_batches(
    fn: Callable[..., list[R]],
    batches: Sequence[Sequence[T]],
    *args: Any,
    n_jobs: int,
    desc: str,
    progress: bool = True,
) -> Iterator[list[R]]:
    """Run ``fn(batch, *args)`` on every batch and yield the results in batch order.

    Parameters
    ----------
    fn : callable
        Takes one batch (and ``args``) and returns one result per item of the batch.
    batches : sequence of sequences
        The work, cut into batches (a batch is one worker task).
    *args
        Passed to ``fn`` after the batch; pickled once per task when ``n_jobs > 1``.
    n_jobs : int, keyword-only
        Worker processes; 1 runs in this process.
    desc : str, keyword-only
        Progress bar label; the bar counts items, not batches.
    progress : bool, keyword-only
        Show the progress bar.

    Yields
    ------
    list
        ``fn``'s result for each batch, in the order of ``batches``.
    """
    from tqdm import tqdm  # the parent's only: workers import this module too

    total = sum(len(b) for b in batches)
    with tqdm(total=total, desc=desc, unit="call", disable=not progress) as bar:
        if n_jobs == 1:
            results: Iterator[list[R]] = (fn(b, *args) for b in batches)
        else:
            results = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(fn)(b, *args) for b in batches
            )
        for done in results:
            bar.update(len(done))
            yield done
