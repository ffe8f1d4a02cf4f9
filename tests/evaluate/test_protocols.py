"""The fair reference, the pre-trained FPN in segmentation, and the protocols beside fine-tuning."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from evaluate.backbones import load_backbone, random_backbone
from evaluate.cells import split_indices
from evaluate.profiles import Profile
from evaluate.protocols import frozen_segmentation, label_subset, linear_probe
from evaluate.sweep import make_folds
from evaluate.tasks import TASKS, load_task
from evaluate.train import Split, make_head
from pretrain.export import export_initial, fpn_path, initial_state


def test_random_reference_is_the_step0_pretraining_backbone_and_fpn(tmp_path):
    """`random` = what `pretrain init --seed 3` (= `pretrain run --seed 3` at step 0) exports."""
    export_initial(tmp_path / "step0.safetensors", "resnet18", seed=3)
    exported = load_backbone("step0", tmp_path / "step0.safetensors")
    reference = random_backbone("resnet18", seed=3)
    assert reference.provenance["seed"] == 3 and "zero_init_last" in reference.provenance["init"]
    assert set(reference.state) == set(exported.state) and len(reference.state) > 100
    assert all(torch.equal(reference.state[k], exported.state[k]) for k in reference.state)
    assert set(reference.fpn) == set(exported.fpn)
    assert all(torch.equal(reference.fpn[k], exported.fpn[k]) for k in reference.fpn)
    assert reference.sha256 == random_backbone("resnet18", seed=3).sha256  # same seed, same digest
    # the recipe's signature: timm's zero-initialised last BatchNorm of every residual block
    assert torch.count_nonzero(reference.state["layer1.0.bn2.weight"]) == 0
    built = reference.build().state_dict()  # the torchvision ResNet evaluate fine-tunes holds them
    assert all(torch.equal(built[k], v) for k, v in reference.state.items())
    other = random_backbone("resnet18", seed=4)
    assert not torch.equal(other.state["conv1.weight"], reference.state["conv1.weight"])
    online = initial_state("resnet18", 3)
    assert torch.equal(online["encoder.fpn.layer_blocks.0.0.weight"], reference.fpn["layer_blocks.0.0.weight"])


def test_segmentation_uses_the_pretrained_fpn_or_a_new_one(tmp_path):
    path = tmp_path / "anaus.safetensors"
    export_initial(path, "resnet18", seed=5)
    backbone = load_backbone("anaus", path)
    assert backbone.fpn_source == "pre-trained" and backbone.fpn_channels == 256
    light = Profile(name="t", resolution=64, max_frames=0, cls_epochs=1, seg_epochs=1, batch_size=2, seg_head="fpn")
    for profile in (light, dataclasses.replace(light, seg_head="maskrcnn")):
        model = make_head("segmentation", profile).build(backbone)
        fpn = (model.body if profile.seg_head == "fpn" else model.backbone).fpn.state_dict()
        assert all(torch.equal(fpn[k], backbone.fpn[k]) for k in backbone.fpn), profile.seg_head
    fpn_path(path).unlink()  # a file without an FPN (timm / torchvision / ImageNet) still works
    plain = load_backbone("plain", path)
    assert plain.fpn is None and plain.fpn_source == "new" and plain.fpn_sha256 is None
    model = make_head("segmentation", light).build(plain)
    assert model(torch.zeros(2, 64, 64, dtype=torch.uint8)).shape == (2, 64, 64)
    assert not torch.equal(model.body.fpn.state_dict()["layer_blocks.0.0.weight"], backbone.fpn["layer_blocks.0.0.weight"])


def test_label_subset_is_grouped_deterministic_and_small():
    groups = np.repeat(np.arange(40), 3).astype(str)  # 40 groups of 3 frames
    labels = np.arange(120) // 3 % 2
    train = np.arange(0, 120)
    subset = label_subset(groups, labels, train, 0.1, seed=7)
    assert np.array_equal(subset, label_subset(groups, labels, train, 0.1, seed=7))
    assert set(subset) <= set(train) and 6 <= len(subset) <= 18
    kept = set(groups[subset])
    assert all(set(np.flatnonzero(groups == g)) <= set(subset) for g in kept)  # whole groups only
    assert set(labels[subset]) == {0, 1}  # stratified
    assert not np.array_equal(subset, label_subset(groups, labels, train, 0.1, seed=8))


@pytest.fixture
def splits(fake_opener, tiny_profile):
    def make(task):
        spec = TASKS[task]
        data = load_task(spec, fake_opener(spec.dataset, None), tiny_profile.resolution, progress=False)
        folds = make_folds(data, 3)
        tr, va, te = split_indices(data, folds, 0, tiny_profile.val_fraction, 0)
        targets = data.labels if data.labels is not None else data.masks
        return data, [Split.take(data.images, targets, i) for i in (tr, va, te)]
    return make


def test_linear_probe_learns_on_frozen_features(splits, tiny_profile):
    torch.set_num_threads(1)
    data, (train, val, test) = splits("pocus-cls")
    backbone = random_backbone()
    before = {k: v.clone() for k, v in backbone.state.items()}
    pred, result = linear_probe(backbone, tiny_profile, 3, train, val, test, torch.device("cpu"), seed=0)
    assert pred.shape == (len(test),) and set(pred) <= {0, 1, 2}
    assert len(result.history) == tiny_profile.linear_epochs and 1 <= result.best_epoch <= tiny_profile.linear_epochs
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert all(torch.equal(before[k], backbone.state[k]) for k in before)


def test_frozen_segmentation_trains_only_the_head(splits, tiny_profile):
    torch.set_num_threads(1)
    data, (train, val, test) = splits("udiat-seg")
    backbone = random_backbone()
    profile = dataclasses.replace(tiny_profile, frozen_epochs=5)
    pred, result = frozen_segmentation(backbone, profile, train, val, test, torch.device("cpu"), seed=0)
    assert pred.shape == tuple(test.targets.shape) and pred.dtype == bool
    model = result.model
    body = model.body.body.state_dict()
    assert all(torch.equal(body[k], v) for k, v in backbone.state.items() if k in body)  # BN stats too
    fpn = model.body.fpn.state_dict()
    assert all(torch.equal(fpn[k], backbone.fpn[k]) for k in fpn)
    torch.manual_seed(0)  # frozen_segmentation seeds like this before building: the same initial head
    fresh = make_head("segmentation", profile).build(backbone, frozen=True)
    assert torch.equal(fresh.body.fpn.state_dict()["layer_blocks.0.0.weight"], fpn["layer_blocks.0.0.weight"])
    assert not torch.equal(fresh.head[0].weight, model.head[0].weight)  # the head did learn
    assert len(result.history) == 5


def _drawn_batches(n_train, batch, epochs, min_steps, seed=0):
    """The index batches train_and_select feeds to the loss, on a one-parameter model."""
    from evaluate.train import train_and_select

    seen = []
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)

    def step_loss(index):
        seen.append(index.tolist())
        return (weight - 1).pow(2).sum()

    result = train_and_select(torch.nn.Linear(1, 1), optimizer, n_train, batch, epochs, step_loss,
                              lambda step, total: 0.1, lambda m: {"dice": 0.0}, "dice",
                              torch.Generator().manual_seed(seed), min_steps=min_steps)
    return seen, result


def test_min_steps_floors_the_steps_of_a_small_split_and_keeps_the_epochs():
    from evaluate.train import steps_per_epoch

    assert steps_per_epoch(26, 8, 6) == 3 and steps_per_epoch(26, 8, 6, 120) == 20
    assert steps_per_epoch(3, 8, 6, 120) == 20 and steps_per_epoch(800, 8, 6, 120) == 100
    seen, result = _drawn_batches(26, 8, epochs=6, min_steps=120)
    assert len(seen) == 120 and len(result.history) == 6          # 6 validations, as without it
    assert all(len(b) == 8 for b in seen)
    per_epoch = [sum(seen[e * 20:(e + 1) * 20], []) for e in range(6)]
    for frames in per_epoch:  # reshuffled full passes: every frame used 6 times, the rest once more
        counts = np.bincount(frames, minlength=26)
        assert counts.min() >= 6 and counts.max() <= 7
    tiny, _ = _drawn_batches(3, 8, epochs=2, min_steps=10)
    assert len(tiny) == 10 and all(sorted(b) == [0, 1, 2] for b in tiny)


def test_min_steps_zero_draws_the_batches_of_one_pass_per_epoch():
    """The paper's protocol (min_steps 0) is unchanged: one shuffle per epoch, ragged batch dropped."""
    seen, _ = _drawn_batches(26, 8, epochs=3, min_steps=0, seed=5)
    generator = torch.Generator().manual_seed(5)
    expected = []
    for _ in range(3):
        order = torch.randperm(26, generator=generator)
        expected += [order[i * 8:(i + 1) * 8].tolist() for i in range(3)]
    assert seen == expected
