"""Folds: no group in two folds (random inputs), determinism, stratification, fold files."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from maskgen.datasets.folds import (
    check_no_leak,
    grouped_kfold,
    grouped_split,
    read_folds,
    write_folds,
)
from maskgen.datasets.frames import FrameRef


def _random_items(rng: np.random.Generator):
    n_groups = int(rng.integers(5, 40))
    sizes = rng.integers(1, 12, size=n_groups)
    groups = np.repeat([f"g{i}" for i in range(n_groups)], sizes)
    group_class = rng.integers(0, 3, size=n_groups)
    labels = np.repeat(group_class, sizes)
    flip = rng.random(len(labels)) < 0.1  # a few groups with mixed classes
    labels[flip] = rng.integers(0, 3, size=flip.sum())
    return list(groups), list(labels)


@pytest.mark.parametrize("trial", range(40))
def test_no_group_in_two_folds_on_random_inputs(trial):
    rng = np.random.default_rng(trial)
    groups, labels = _random_items(rng)
    k = int(rng.integers(2, 6))
    for lab in (None, labels):
        folds = grouped_kfold(groups, k=k, seed=trial, labels=lab)
        assert folds.shape == (len(groups),) and set(folds.tolist()) == set(range(k))
        by_group = {}
        for g, f in zip(groups, folds, strict=True):
            assert by_group.setdefault(g, f) == f, f"group {g} in two folds"
        held = grouped_split(groups, 0.25, seed=trial, labels=lab)
        assert held.any() and not held.all()
        for g in set(groups):
            assert len({held[i] for i, x in enumerate(groups) if x == g}) == 1


def test_deterministic_for_a_seed_and_seed_matters():
    groups, labels = _random_items(np.random.default_rng(7))
    a = grouped_kfold(groups, 5, seed=3, labels=labels)
    np.testing.assert_array_equal(a, grouped_kfold(groups, 5, seed=3, labels=labels))
    assert any(not np.array_equal(a, grouped_kfold(groups, 5, seed=s, labels=labels)) for s in range(4, 8))


def test_stratified_and_balanced_on_singletons():
    labels = [0] * 50 + [1] * 25 + [2] * 10
    folds = grouped_kfold([str(i) for i in range(len(labels))], 5, seed=0, labels=labels)
    for f in range(5):
        per_class = Counter(lab for lab, x in zip(labels, folds, strict=True) if x == f)
        assert per_class == {0: 10, 1: 5, 2: 2}
    held = grouped_split([str(i) for i in range(len(labels))], 0.2, seed=1, labels=labels)
    assert Counter(np.asarray(labels)[held].tolist()) == {0: 10, 1: 5, 2: 2}


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="k must be an integer >= 2, got 1"):
        grouped_kfold(["a", "b"], k=1)
    with pytest.raises(ValueError, match="k=5 folds need at least 5 groups, found 2"):
        grouped_kfold(["a", "b", "b"], k=5)
    with pytest.raises(ValueError, match="fraction must lie in"):
        grouped_split(["a", "b"], 1.5)
    assert not grouped_split(["a", "a"], 0.5).any()  # one group: nothing can be held out
    with pytest.raises(ValueError, match="group 'a' is in folds 0 and 1"):
        check_no_leak(["a", "a"], [0, 1])


def test_fold_file_round_trip(tmp_path):
    refs = [FrameRef("busi", f"benign/{i}.png", 0, group=f"p{i // 2}", label=i % 2 if i else None)
            for i in range(12)]
    folds = grouped_kfold([r.group for r in refs], 3, seed=0)
    path = write_folds(tmp_path / "folds.parquet", refs, folds, {"dataset": "busi", "seed": 0})
    back = read_folds(path)
    assert back.frame_ids == [r.frame_id for r in refs] and back.groups == [r.group for r in refs]
    assert back.labels == [r.label for r in refs]
    np.testing.assert_array_equal(back.folds, folds)
    side = json.loads((tmp_path / "folds.json").read_text())
    assert side["dataset"] == "busi" and side["groups"] == 6 and sum(side["frames_per_fold"].values()) == 12
    assert back.meta == side
    with pytest.raises(ValueError, match="group 'p0' is in folds"):
        write_folds(tmp_path / "bad.parquet", refs, [0, 1] + list(folds[2:]), {})
    assert not (tmp_path / "bad.parquet").exists()
