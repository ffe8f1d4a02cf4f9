"""Task resolution, class mapping and loading policy (corrupt frames, empty masks, subsampling)."""

from __future__ import annotations

import numpy as np
import pytest

from evaluate.tasks import TASKS, class_ids, load_task, resolve_tasks


def test_resolve_tasks_by_task_or_dataset():
    assert [t.name for t in resolve_tasks(None)] == list(TASKS)
    assert [t.name for t in resolve_tasks("busi")] == ["busi-cls", "busi-seg"]
    assert [t.name for t in resolve_tasks("udiat-seg, busi-seg,busi")] == ["udiat-seg", "busi-seg", "busi-cls"]
    with pytest.raises(ValueError, match="camus"):
        resolve_tasks("camus")


def test_class_ids_follow_names_not_registry_order():
    task = TASKS["pocus-cls"]
    registry = {0: "regular", 1: "Covid19", 2: "pneumonia", 3: "viral"}
    assert class_ids(task, registry) == {1: 0, 2: 1, 0: 2}  # viral (3) is left out
    with pytest.raises(ValueError, match="pneumonia"):
        class_ids(task, {0: "covid19", 1: "regular"})


def test_load_task_records_corrupt_frames_and_excludes_empty_masks(fake_opener):
    reader = fake_opener("udiat", None)
    reader.corrupt, reader.empty = {3}, {5, 6}
    data = load_task(TASKS["udiat-seg"], reader, 32, progress=False)
    assert len(data) == 27 and data.images.shape == (27, 32, 32) and data.images.dtype == np.uint8
    assert data.excluded == {"empty mask": 2}
    assert ("udiat/img/003.png#0", "truncated file") in data.problems
    assert ("broken.png", "not an image") in data.problems  # the reader's listing problem
    assert set(np.unique(data.masks)) == {0, 1} and not data.grouped


def test_subsampling_is_deterministic_and_keeps_groups(fake_opener):
    first = load_task(TASKS["pocus-cls"], fake_opener("pocus", None), 32, max_frames=12, progress=False)
    again = load_task(TASKS["pocus-cls"], fake_opener("pocus", None), 32, max_frames=12, progress=False)
    assert len(first) == 12 and list(first.frame_ids) == list(again.frame_ids)
    assert first.grouped and first.labels.dtype == np.int64


def test_all_names_every_task():
    assert [t.name for t in resolve_tasks("all")] == [t.name for t in resolve_tasks(None)]
    assert len(resolve_tasks(" ALL ")) == 6
