"""Session set-up shared by every test layer, and the marks that split the suite.

Marks (``make test-fast`` runs ``-m "not slow and not postgres and not browser"``):

- ``browser``: everything under tests/web (Chromium through Playwright).
- ``postgres``: a test on the real PostgreSQL server: a ``postgresql`` parameter (the
  ``store_url`` fixture, ``backend`` parameters), a fixture in :data:`POSTGRES_FIXTURES`,
  or a test in :data:`POSTGRES_TESTS`. A test that opens PostgreSQL without the mark
  fails (tests.api.conftest checks :func:`current_test_marked`), so the list stays whole.
- ``slow``: marked in its file, or listed in :data:`SLOW_TESTS`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

# Fixtures that open a PostgreSQL schema or database for every test that uses them.
POSTGRES_FIXTURES = frozenset({"pg", "replicas", "mlflow_database"})
# Node ids (relative to tests/; a file or a test, parameters left out) that open one in
# the test's own body or in a fixture whose name is shared with SQLite tests elsewhere.
POSTGRES_TESTS = (
    "api/test_stream_workers.py",
    "api/test_serve_start.py::test_two_workers_on_postgres_start_on_busy_cores_without_restarts",
    "api/test_db_faults.py::test_a_worker_killed_mid_request_is_replaced_and_nothing_acknowledged_is_lost",
    "api/test_db_faults.py::test_a_key_checked_against_a_hung_database_leaves_the_request_only_the_rest",
    "code/test_mlflow_server.py",
)
# Files and tests over about a second each (a model trained, a corpus simulated, a server
# or fresh interpreter started, workers spawned) that their files do not mark themselves;
# measured with --durations=0 on the rest (make test-fast).
SLOW_TESTS = (
    "api/test_demo_serve.py",
    "api/test_drift.py",
    "api/test_malformed_audio.py",
    "api/test_reports.py",
    "api/test_serve_start.py",
    "api/test_stream_pacing.py",
    "api/test_stream_server.py",
    "api/test_app_ops.py::test_serve_command_runs_uvicorn_on_the_factory",
    "api/test_console_api.py::test_dashboard_endpoint_and_plots",
    "api/test_app_ops.py::test_reload_keeps_requests_in_flight_on_the_old_model",
    "api/test_app_ops.py::test_unusable_model_answers_503_until_a_reload_fixes_it",
    "api/test_db_faults.py::test_a_locked_sqlite_file_answers_every_request_within_the_timeout",
    "api/test_security.py::test_a_model_reference_that_is_a_url_is_never_fetched",
    "code/test_adapt.py",
    "code/test_cluster.py",
    "code/test_model_odd_data.py",
    "code/test_registry.py",
    "code/test_train_cli.py",
    "code/test_binning.py::test_a_weighted_fit_gives_the_same_trees",
    "code/test_audio_budget.py::test_memory_held_is_the_8khz_result_not_the_file_rate",
    "code/test_cli.py::test_errors_are_one_clear_line_without_traceback",
    "code/test_cli.py::test_demo_runs_twice_in_the_same_folder",
    "code/test_drift.py::test_model_reference_adds_a_reference_to_a_model_folder",
    "code/test_drift.py::test_train_writes_the_reference_into_the_card",
    "code/test_features.py::test_workers_give_the_bits_of_one_process",
    "code/test_model.py::test_flat_forest_gives_scikit_learns_raw_scores_bit_for_bit",
    "code/test_model.py::test_shipped_scores_are_scikit_learns_probabilities_calibrated_and_flagged",
    "code/test_model.py::test_refitting_after_predicting_predicts_with_the_new_fit",
    "code/test_model.py::test_other_calibrations_give_distributions",
    "code/test_model.py::test_same_random_state_gives_identical_probabilities",
    "code/test_model.py::test_flat_forest_without_numba_walks_with_numpy",
    "code/test_model_domains.py::test_each_domain_keeps_its_budget",
    "code/test_report.py::test_files_are_written_with_plots_and_tables",
    "code/test_report.py::test_tiny_and_odd_tables_do_not_crash",
    "code/test_streaming.py::test_processes_warming_up_at_once_take_turns",
    "code/test_threads.py::test_features_in_process_match_a_fresh_process",
    "simulator/test_simulate.py",
    "simulator/test_simulate_determinism.py::test_corpus_is_identical_whatever_ran_before_the_order_and_the_workers",
    "simulator/test_sim_voice.py::test_adult_male_f0_is_clearly_below_child_f0",
    "simulator/test_sim_sounds.py::test_footsteps_periodicity",
    "simulator/test_sim_sounds.py::test_pocket_rustle_is_muffled",
    "simulator/test_sim_voice.py::test_synthesize_is_identical_in_a_fresh_process",
)

_current: list[pytest.Item] = []


def pytest_configure(config: pytest.Config) -> None:
    # In the controller only (xdist workers have workerinput): numba kernels compiled and
    # cached on disk once, before the workers start; workers writing the same cache at
    # once crashed with a segmentation fault in a fresh checkout.
    if not hasattr(config, "workerinput"):
        from classifier.streaming import warm_up

        warm_up()


def _listed(nodeid: str, listed: tuple[str, ...]) -> bool:
    base = nodeid.split("[", 1)[0]
    return any(base == n or base.startswith(n + "::") for n in listed)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        rel = Path(item.path).relative_to(TESTS).as_posix()
        nodeid = rel + item.nodeid.split(".py", 1)[1] if ".py" in item.nodeid else rel
        if rel.startswith("web/"):
            item.add_marker(pytest.mark.browser)
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if (
            any(isinstance(p, str) and p == "postgresql" for p in params)
            or POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or _listed(nodeid, POSTGRES_TESTS)
        ):
            item.add_marker(pytest.mark.postgres)
        if _listed(nodeid, SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> object:
    # The test being set up and run, for current_test_marked (fixtures of wider scope
    # are set up during their first test's set-up).
    _current[:] = [item]
    return (yield)


def current_test_marked(name: str) -> bool:
    """Whether the test now running carries mark ``name`` (True outside a test)."""
    return not _current or _current[0].get_closest_marker(name) is not None


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """Folder ``name`` made by ``build(folder)`` once for the whole run, shared by the
    xdist workers (the first to ask builds it under a lock, the others wait and reuse it).

    For read-only inputs that cost seconds to make (an empty MLflow store, a simulated
    corpus): a test that changes one copies it first.
    """
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # xdist: shared
    folder = root / f"shared-{name}"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def _empty_mlflow_store(folder: Path) -> None:
    from classifier.registry import session

    with session(f"sqlite:///{folder / 'mlflow.db'}") as client:
        client.search_experiments()


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables made (alembic's migrations take 5-7 s per
    store): copy it to a test's own folder before use."""
    return built_once(tmp_path_factory, "mlflow-store", _empty_mlflow_store) / "mlflow.db"


#: Calls of the simulated corpus several files train on (small_corpus).
SMALL_CORPUS_CALLS = 100


def _small_corpus(folder: Path) -> None:
    from training.simulate import simulate_corpus

    simulate_corpus(
        folder / "bal", preset="balanced", n_calls=SMALL_CORPUS_CALLS, seed=31, progress=False
    )


def small_corpus_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest of a small simulated corpus (balanced, :data:`SMALL_CORPUS_CALLS`
    calls), simulated once for the run and shared by the files that train on one (read
    only: tests that edit rows write a copy elsewhere)."""
    return built_once(tmp_path_factory, "small-corpus", _small_corpus) / "bal" / "manifest.csv"


def shared_feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature cache (joblib.Memory, keyed by audio content, feature code and prefix)
    shared by the run: the small corpus's calls are featured once, whichever file comes
    first."""
    return built_once(tmp_path_factory, "feature-cache", lambda folder: None)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`small_corpus_manifest`."""
    return small_corpus_manifest(tmp_path_factory)


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`shared_feature_cache`."""
    return shared_feature_cache(tmp_path_factory)
