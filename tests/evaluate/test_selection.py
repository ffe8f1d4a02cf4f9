"""No fold leakage, and the test fold never chooses an epoch (poisoned-label and spy checks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import evaluate.cells as cells
from evaluate.backbones import random_backbone
from evaluate.cells import CellKey, run_cell, split_indices
from evaluate.sweep import make_folds
from evaluate.tasks import TASKS, load_task


@pytest.fixture
def pocus(fake_opener, tiny_profile):
    reader = fake_opener("pocus", None)
    return load_task(TASKS["pocus-cls"], reader, tiny_profile.resolution, progress=False)


def test_folds_and_validation_split_never_share_groups(pocus):
    folds = make_folds(pocus, 3)
    seen_test = []
    for fold in range(3):
        train, val, test = split_indices(pocus, folds, fold, 0.25, seed=fold)
        groups = [set(pocus.groups[i]) for i in (train, val, test)]
        assert not groups[0] & groups[1] and not groups[0] & groups[2] and not groups[1] & groups[2]
        assert set(test) == set(np.flatnonzero(folds == fold))
        assert len(train) + len(val) + len(test) == len(pocus) and len(val) > 0
        seen_test += list(test)
    assert sorted(seen_test) == list(range(len(pocus)))  # every frame is tested exactly once


def _cell(data, folds, profile):
    torch.set_num_threads(1)
    key = CellKey("pocus-cls", 1, "random", 0)
    return run_cell(key, data, folds, random_backbone(), profile, torch.device("cpu"), {})[0]


def test_poisoned_test_labels_do_not_change_selection(pocus, tiny_profile):
    folds = make_folds(pocus, 3)
    clean = _cell(pocus, folds, tiny_profile)
    poisoned_labels = pocus.labels.copy()
    test = folds == 1
    poisoned_labels[test] = (poisoned_labels[test] + 1) % 3  # every test label wrong
    pocus.labels = poisoned_labels
    poisoned = _cell(pocus, folds, tiny_profile)
    assert poisoned["best_epoch"] == clean["best_epoch"]
    assert poisoned["history"] == clean["history"]          # validation scores bit-identical
    assert poisoned["metrics"] != clean["metrics"]          # ... while the test scores moved


def test_fit_never_receives_a_test_frame(pocus, tiny_profile, monkeypatch):
    folds = make_folds(pocus, 3)
    seen = {}
    real_fit = cells.fit

    def spy(head, backbone, train, val, epochs, device, seed, progress=None):
        seen["frames"] = {bytes(x.numpy()) for x in torch.cat([train.images, val.images])}
        return real_fit(head, backbone, train, val, 1, device, seed)

    monkeypatch.setattr(cells, "fit", spy)
    _cell(pocus, folds, tiny_profile)
    test_frames = {bytes(x) for x in pocus.images[folds == 1]}
    assert seen["frames"] and not seen["frames"] & test_frames
    assert len(seen["frames"]) == int((folds != 1).sum())
