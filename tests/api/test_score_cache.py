"""The pre-answer score cache: exact, bounded, per model, never stale."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.service import LoadedModel, ScoreCache, pre_answer_score
from classifier.history import PastCall, empty_history, history_features
from tests.api.test_app_calls import Env, default_model, new_number
from tests.api.test_app_calls import env as env  # the app fixture, on both databases

AT = datetime(2025, 6, 3, 22, 15, tzinfo=UTC)


def _features(model: Any, **history: float) -> dict[str, float]:
    from classifier.features import call_features

    return call_features(
        None,
        caller_id="+6281200000001",
        started_at=AT,
        duration_s=0.0,
        history={**empty_history(), **history},
    )


def test_a_hit_is_the_score_the_model_gives() -> None:
    model = default_model().model
    cache = ScoreCache(size=8)
    vectors = [
        _features(model, hist_calls_total=float(n), hist_prank=float(n % 2)) for n in range(6)
    ]
    first = [cache.score(model, v) for v in vectors]
    again = [cache.score(model, v) for v in vectors]
    assert [hit for _, hit in first] == [False] * 6 and [hit for _, hit in again] == [True] * 6
    assert [s for s, _ in again] == [model.score(v, stage="pre_answer") for v in vectors]
    assert (cache.hits, cache.misses, len(cache)) == (6, 6, 6)
    # -0.0 and 0.0 compare equal but are different vectors: never the same entry.
    signed = _features(model, hist_calls_total=-0.0)
    assert cache.score(model, signed)[1] is False
    # A bad vector is refused as the model refuses it, and not kept.
    with pytest.raises(Exception, match="infinite"):
        cache.score(model, {**vectors[0], "hist_prank": float("inf")})


def test_cache_is_bounded_and_drops_the_least_recent() -> None:
    model = default_model().model
    cache = ScoreCache(size=3)
    vectors = [_features(model, hist_calls_total=float(n)) for n in range(4)]
    for v in vectors[:3]:
        cache.score(model, v)
    cache.score(model, vectors[0])  # now the most recent
    cache.score(model, vectors[3])  # drops vectors[1]
    assert len(cache) == 3
    assert cache.score(model, vectors[0])[1] and not cache.score(model, vectors[1])[1]
    off = ScoreCache(size=0)
    assert not off.score(model, vectors[0])[1] and not off.score(model, vectors[0])[1]
    assert len(off) == 0
    with pytest.raises(Exception, match="0 or more"):
        ScoreCache(size=-1)


def test_each_loaded_model_has_its_own_cache() -> None:
    loaded = default_model()
    other = LoadedModel(model=loaded.model, source=loaded.source, loaded_at=loaded.loaded_at)
    assert other.cache is not loaded.cache and len(other.cache) == 0
    assert other == loaded  # the cache takes no part in comparisons
    at = AT - timedelta(hours=1)
    score = pre_answer_score(
        loaded.model,
        caller_id="",
        started_at=at,
        history=empty_history(),
        timezone=None,
        cache=other.cache,
    )
    assert score == pre_answer_score(
        loaded.model, caller_id="", started_at=at, history=empty_history(), timezone=None
    )
    assert pickle.loads(pickle.dumps(score)) == score


def test_a_disposition_changes_the_next_score_of_a_cached_vector(env: Env) -> None:
    # Two numbers with identical pasts share cache entries; a disposition on one of
    # them must change its next score at once, while the other keeps the cached one.
    runtime = env.app.state.runtime
    numbers = [new_number(), new_number()]
    past = datetime.now(UTC) - timedelta(hours=3)
    firsts = [env.register(caller_id=n, started_at=past) for n in numbers]
    soon = datetime.now(UTC) + timedelta(seconds=30)
    hits = runtime.models.get().cache.hits
    one = env.register(caller_id=numbers[0], started_at=soon)
    two = env.register(caller_id=numbers[1], started_at=soon)
    assert runtime.models.get().cache.hits == hits + 1  # same vector: the second is a hit
    assert {k: one[k] for k in ("p_prank", "reasons")} == {
        k: two[k] for k in ("p_prank", "reasons")
    }
    env.client.post(
        f"/v1/calls/{firsts[0]['call_id']}/disposition", json={"label": "prank"}, headers=env.auth()
    )
    later = soon + timedelta(seconds=1)
    labelled = env.register(caller_id=numbers[0], started_at=later)
    unlabelled = env.register(caller_id=numbers[1], started_at=later)
    assert labelled["p_prank"] != unlabelled["p_prank"]
    history = history_features(
        [
            PastCall(
                started_at=past,
                duration_s=0.0,
                label="prank",
                label_at=datetime.now(UTC),
                weight=1.0,
            ),
            PastCall(started_at=soon, duration_s=0.0, label=None, label_at=None, weight=1.0),
        ],
        at=later,
    )
    direct = pre_answer_score(
        default_model().model,
        caller_id=numbers[0],
        started_at=later,
        history=history,
        timezone=None,
    )
    assert labelled["p_prank"] == direct.p_prank
