"""Honest train/test splits (training/split.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from classifier.errors import InvalidParameterError
from training.split import VOICE_COLUMN, caller_keys, fold_keys, honest_split

_TZ = timezone(timedelta(hours=7))


def _calls(n: int = 400, seed: int = 0, *, start: datetime | None = None) -> pd.DataFrame:
    """Calls over three weeks from repeating callers, ~15% withheld, a few SIM-less."""
    rng = np.random.default_rng(seed)
    base = start or datetime(2025, 6, 2, tzinfo=_TZ)
    pool = [f"+62812{k:07d}" for k in rng.integers(0, 10**7, 80)]
    kind = rng.random(n)
    named = [str(c) for c in rng.choice(pool, n)]
    callers = [
        "" if u < 0.15 else (f"simless:abc{i % 3}" if u < 0.2 else c)
        for i, (u, c) in enumerate(zip(kind, named, strict=True))
    ]
    offsets = np.sort(rng.uniform(0, 21 * 86400, n))
    return pd.DataFrame(
        {
            "call_id": [f"c{seed}-{i:04d}" for i in range(n)],
            "caller_id": callers,
            "started_at": [(base + timedelta(seconds=float(s))).isoformat() for s in offsets],
            "label": rng.choice(["emergency", "prank", "ghost"], n),
        }
    )


def _when(table: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(table["started_at"], utc=True, format="ISO8601")


def test_callers_never_on_both_sides() -> None:
    table = _calls()
    split = honest_split(table, test_callers=0.3, test_after=0.7, seed=1)
    assert split.train.size > 0 and split.test.size > 0
    keys = caller_keys(table)
    assert not set(keys[split.train]) & set(keys[split.test])
    callers = table["caller_id"].to_numpy()
    named_train = {c for c in callers[split.train] if c}
    named_test = {c for c in callers[split.test] if c}
    assert not named_train & named_test
    assert split.description["callers_in_both"] == 0
    assert not set(split.train) & set(split.test)


def test_time_order_around_the_cut() -> None:
    table = _calls()
    split = honest_split(table, test_after=0.6, seed=0)
    when = _when(table)
    cut = pd.Timestamp(split.description["time_cut"]["manifest"])
    assert (when.iloc[split.test] >= cut).all()
    assert (when.iloc[split.train] < cut).all()
    assert when.iloc[split.train].max() < when.iloc[split.test].min()
    d = split.description
    assert d["train_calls"] + d["test_calls"] + d["left_out_calls"] == len(table)
    assert d["train_calls"] == split.train.size and d["test_calls"] == split.test.size


def test_withheld_calls_are_their_own_caller() -> None:
    table = _calls()
    keys = caller_keys(table)
    withheld = (table["caller_id"] == "").to_numpy()
    assert withheld.sum() > 20
    assert len(set(keys[withheld])) == withheld.sum()
    assert not set(keys[withheld]) & set(keys[~withheld])
    # Named callers share one key across their calls.
    named = table["caller_id"].to_numpy()
    for c in set(named[~withheld]):
        assert len(set(keys[named == c])) == 1
    # So withheld calls are spread over both sides rather than all put on one.
    split = honest_split(table, test_callers=0.5, test_after=0.5, seed=0)
    assert withheld[split.train].any() and withheld[split.test].any()


def test_each_source_gets_its_own_time_cut() -> None:
    early = _calls(200, seed=1).assign(source="0")
    late = _calls(200, seed=2, start=datetime(2025, 9, 1, tzinfo=_TZ)).assign(source="1")
    table = pd.concat([early, late], ignore_index=True)
    split = honest_split(table, test_after=0.7, seed=0)
    cuts = split.description["time_cut"]
    assert set(cuts) == {"0", "1"}
    when = _when(table)
    source = table["source"].to_numpy()
    for s, cut_text in cuts.items():
        cut = pd.Timestamp(cut_text)
        train = split.train[source[split.train] == s]
        test = split.test[source[split.test] == s]
        # A single global cut would leave the early manifest with no test calls.
        assert train.size > 0 and test.size > 0, s
        assert (when.iloc[test] >= cut).all()
        assert (when.iloc[train] < cut).all()
    assert pd.Timestamp(cuts["0"]) < pd.Timestamp(cuts["1"])


def test_positions_do_not_depend_on_the_index() -> None:
    table = _calls()
    shuffled_index = table.set_axis(np.random.default_rng(0).permutation(len(table)) + 1000)
    a = honest_split(table, seed=3)
    b = honest_split(shuffled_index, seed=3)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test, b.test)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"test_callers": 0.0}, "test_callers"),
        ({"test_callers": 1.0}, "test_callers"),
        ({"test_callers": -0.2}, "test_callers"),
        ({"test_after": 1.5}, "test_after"),
        ({"test_after": float("nan")}, "test_after"),
    ],
)
def test_bad_shares_raise(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(InvalidParameterError, match=rf"{name} is .*strictly in \(0, 1\)"):
        honest_split(_calls(20), **kwargs)


def test_empty_table_raises() -> None:
    with pytest.raises(InvalidParameterError, match="no calls"):
        honest_split(_calls(20).iloc[:0])


def test_deterministic_for_a_seed() -> None:
    table = _calls()
    a, b = honest_split(table, seed=7), honest_split(table, seed=7)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test, b.test)
    assert a.description == b.description
    c = honest_split(table, seed=8)
    assert not np.array_equal(a.test, c.test)


def test_test_callers_share_is_roughly_respected() -> None:
    table = _calls(400)
    keys = caller_keys(table)
    split = honest_split(table, test_callers=0.3, test_after=0.01, seed=0)
    test_keys = set(keys[split.test])
    share = len(test_keys) / len(set(keys))
    assert 0.15 < share < 0.45


def test_prefix_rows_follow_their_call_to_its_side() -> None:
    """Split on whole calls; every prefix row lands on its call's side, withheld included."""
    from training.train import split_rows

    calls = _calls(300, seed=3).assign(source="0", prefix_s=np.nan)
    parts = [calls] + [calls.iloc[::k].assign(prefix_s=p) for k, p in ((1, 2.0), (2, 5.0))]
    table = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=0)
    table = table.reset_index(drop=True)
    whole = table["prefix_s"].isna().to_numpy()
    split = honest_split(table[whole].reset_index(drop=True), test_callers=0.3, test_after=0.7)
    train, test = split_rows(table, split)
    side = {cid: "train" for cid in table[whole].iloc[split.train]["call_id"]}
    side |= {cid: "test" for cid in table[whole].iloc[split.test]["call_id"]}
    for rows, name in ((train, "train"), (test, "test")):
        assert {side.get(c) for c in table["call_id"].iloc[rows]} == {name}
    # Calls left out of both sides take their prefixes with them.
    assert len(train) + len(test) == table["call_id"].isin(side.keys()).sum()
    keys = caller_keys(table)
    assert not set(keys[train]) & set(keys[test])


def test_folds_by_manifest_keep_each_corpus_together() -> None:
    table = pd.concat(
        [_calls(100, seed=k).assign(source=str(k)) for k in range(5)], ignore_index=True
    )
    keys = fold_keys(table, by="manifest", n_folds=4)
    assert len(set(keys)) == 5
    for k in range(5):
        assert len(set(keys[(table["source"] == str(k)).to_numpy()])) == 1
    np.testing.assert_array_equal(fold_keys(table, by="caller", n_folds=4), caller_keys(table))


def test_folds_by_manifest_need_a_manifest_per_fold() -> None:
    table = pd.concat(
        [_calls(50, seed=k).assign(source=str(k)) for k in range(3)], ignore_index=True
    )
    with pytest.raises(InvalidParameterError, match=r"at least 4 manifests.*got 3"):
        fold_keys(table, by="manifest", n_folds=4)
    with pytest.raises(InvalidParameterError, match="fold_by is 'corpus'"):
        fold_keys(table, by="corpus", n_folds=4)


def test_folds_by_voice_join_callers_who_share_a_speaker() -> None:
    table = pd.DataFrame(
        {
            "call_id": [f"c{k}" for k in range(7)],
            "caller_id": ["+1", "+2", "+3", "", "+4", "+4", "+5"],
            # +1 and +2 share speaker A (at two gains); +3 and the withheld call share B.
            VOICE_COLUMN: ["A@1.0", "A@0.9", "B", "B@1.1", None, "", "C"],
        }
    )
    keys = fold_keys(table, by="voice", n_folds=4)
    assert keys[0] == keys[1]
    assert keys[2] == keys[3]
    assert keys[4] == keys[5]  # one caller, no voice given: its caller key
    assert len({keys[0], keys[2], keys[4], keys[6]}) == 4


def test_folds_by_voice_are_folds_by_caller_without_voices() -> None:
    table = _calls(200)
    np.testing.assert_array_equal(fold_keys(table, by="voice", n_folds=4), caller_keys(table))
    np.testing.assert_array_equal(
        fold_keys(table.assign(**{VOICE_COLUMN: np.nan}), by="voice", n_folds=4),
        caller_keys(table),
    )


def test_folds_by_voice_chain_through_speakers_and_callers() -> None:
    # +1 speaks as A and B, +2 as B: all of +1, +2 and speaker A's other caller +3 join.
    table = pd.DataFrame(
        {
            "call_id": ["a", "b", "c", "d", "e"],
            "caller_id": ["+1", "+1", "+2", "+3", "+4"],
            VOICE_COLUMN: ["A", "B", "B", "A", "D"],
        }
    )
    keys = fold_keys(table, by="voice", n_folds=4)
    assert len(set(keys[:4])) == 1
    assert keys[4] != keys[0]
