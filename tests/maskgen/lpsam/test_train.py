"""Adaptation steps: losses, partial labels, the loss goes down, resume equals a clean run."""

from __future__ import annotations

import pytest
import torch

from maskgen.common.schedules import warmup_cosine
from maskgen.lpsam import train as train_mod
from maskgen.lpsam.losses import balanced_weights, bce_dice_loss, dice_loss, mask_iou
from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.testing import MICRO, synthetic_pairs
from maskgen.lpsam.train import (
    LR_FLOOR,
    PhaseSettings,
    phase1_loss,
    phase2_loss,
    prompted_loss,
    run_phase,
    set_trainable,
)


@pytest.fixture(scope="module")
def pairs():
    return synthetic_pairs(n_per_dataset=8, size=MICRO.input_size, seed=1)


def test_balanced_bce_pulls_a_wrong_mask_toward_its_small_structure():
    """A mask on the wrong structure: the balanced BCE's pull on the true structure's pixels
    is 0.5 / (its share) times the plain one; foreground and background weigh half each."""
    target = torch.zeros(1, 20, 20)
    target[0, :2, :2] = 1                                   # 1% of the frame
    w = balanced_weights(target)
    assert w.mean().item() == pytest.approx(1.0)
    assert (w * target).sum().item() == pytest.approx(200.0) and w[0, 0, 0].item() == pytest.approx(50.0)
    torch.testing.assert_close(balanced_weights(torch.zeros(1, 4, 4)), torch.ones(1, 4, 4))  # empty: plain
    logits = torch.full((1, 20, 20), -4.0, requires_grad=True)
    logits.data[0, 10:, 10:] = 4.0                          # confidently on the wrong structure
    grads = []
    for balanced in (False, True):
        (g,) = torch.autograd.grad(bce_dice_loss(logits, target, 0.0, balanced).sum(), logits)
        grads.append(g[0, 0, 0].item())
    assert grads[1] == pytest.approx(50.0 * grads[0], rel=1e-5) and grads[0] < 0


def test_balanced_bce_is_part_of_the_phase_fingerprint_only_when_on():
    off, on = PhaseSettings(10, 1e-3), PhaseSettings(10, 1e-3, balanced_bce=True)
    assert off.fingerprint(2, {}) != on.fingerprint(2, {})


def test_dice_loss_against_formula():
    logits = torch.tensor([[[10.0, -10.0], [10.0, -10.0]]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    # p ~ [1, 0, 1, 0]: 2 * 1 / (2 + 1) with smooth 1: 1 - (2 + 1) / (3 + 1)
    torch.testing.assert_close(dice_loss(logits, target), torch.tensor([0.25]), atol=1e-3, rtol=0)
    assert bce_dice_loss(logits, target, 1.0).item() == pytest.approx(dice_loss(logits, target).item())
    torch.testing.assert_close(mask_iou(logits, target), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="1.5"):
        bce_dice_loss(logits, target, 1.5)


def test_lr_schedule_is_a_pure_function():
    assert warmup_cosine(0, 1.0, 10, 100, LR_FLOOR) == pytest.approx(0.1)
    assert warmup_cosine(9, 1.0, 10, 100, LR_FLOOR) == pytest.approx(1.0)
    assert warmup_cosine(99, 1.0, 10, 100, LR_FLOOR) < 0.02
    assert warmup_cosine(50, 1.0, 10, 100, LR_FLOOR) == warmup_cosine(50, 1.0, 10, 100, LR_FLOOR)


def test_targets_are_partial(pairs):
    idx = torch.tensor([0, len(pairs) - 1])  # a heart frame and a thyroid frame
    target, valid = pairs.targets(idx)
    assert valid.tolist() == [[True, True, False], [False, False, True]]
    assert target[0, 2].sum() == 0 and target[0, 0].sum() > 0 and target[1, 2].sum() > 0


def test_phase2_loss_ignores_classes_of_other_datasets(pairs):
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes))
    set_trainable(model, 2, False)
    settings = PhaseSettings(1, 1e-3)
    images = pairs.images[:2]
    target, valid = pairs.targets(torch.tensor([0, 1]))  # heart frames: nodule class invalid
    base = phase2_loss(model, images, target, valid, settings, None)
    changed = target.clone()
    changed[:, 2] = 1.0  # a nodule everywhere would change a loss that used it
    assert phase2_loss(model, images, changed, valid, settings, None).item() == pytest.approx(base.item())
    changed[:, 0] = 1.0 - changed[:, 0]
    assert phase2_loss(model, images, changed, valid, settings, None).item() != pytest.approx(base.item())


def test_frame_weighted_loss_weighs_every_frame_alike_however_many_classes_it_has(pairs):
    """A heart frame (2 labelled classes) and a thyroid frame (1): by mask the heart frame's loss
    weighs 2/3, frame-weighted 1/2, in the latent loss and in the GT-prompt replay alike."""
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes))
    model.eval()
    idx = torch.tensor([0, len(pairs) - 1])
    target, valid = pairs.targets(idx)
    assert valid.sum(1).tolist() == [2, 1]
    for replay in (0.0, 1.0):
        common = {"train_decoder": True, "prompt_replay": replay}
        by_mask, by_frame = PhaseSettings(1, 1e-3, **common), PhaseSettings(1, 1e-3, frame_weighted=True, **common)

        def loss(rows, settings):
            with torch.no_grad():
                return phase2_loss(model, pairs.images[idx[rows]], target[rows], valid[rows], settings,
                                   torch.Generator().manual_seed(3)).item()

        heart, thyroid = loss([0], by_mask), loss([1], by_mask)
        if replay == 0:   # the GT-prompt draw of a one-frame batch differs from a two-frame one's
            assert loss([0], by_frame) == pytest.approx(heart)   # one frame: the same either way
            assert loss([0, 1], by_mask) == pytest.approx((2 * heart + thyroid) / 3, rel=1e-5)
            assert loss([0, 1], by_frame) == pytest.approx((heart + thyroid) / 2, rel=1e-5)
        assert loss([0, 1], by_frame) != pytest.approx(loss([0, 1], by_mask), rel=1e-4)


def test_mean_loss_by_mask_and_by_frame():
    per_mask = torch.tensor([1.0, 2.0, 3.0, 10.0])
    frame = torch.tensor([0, 0, 0, 2])                     # frame 1 has no mask
    assert train_mod.mean_loss(per_mask, frame, 3, False).item() == pytest.approx(4.0)
    assert train_mod.mean_loss(per_mask, frame, 3, True).item() == pytest.approx(6.0)  # (2 + 10) / 2


def test_frame_weighting_enters_the_phase_fingerprint_only_when_on():
    assert PhaseSettings(10, 1e-3).fingerprint(2, {}) != PhaseSettings(10, 1e-3, frame_weighted=True).fingerprint(2, {})


def _fixed_batch_loss(model, pairs, phase):
    gen = train_mod.step_generator(123, phase, 0)
    batch = train_mod.draw_batch(pairs, pairs.indices(False), 8, gen, False, torch.device("cpu"))
    fn = phase1_loss if phase == 1 else phase2_loss
    with torch.no_grad():
        return fn(model, *batch, PhaseSettings(1, 1e-3), gen).item()


def test_a_few_steps_reduce_the_loss(pairs, tmp_path):
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes))
    for phase, steps, lr in ((1, 80, 3e-3), (2, 60, 3e-3)):
        set_trainable(model, phase, True)
        model.eval()
        before = _fixed_batch_loss(model, pairs, phase)
        run_phase(model, pairs, phase, PhaseSettings(steps, lr, batch_size=8, warmup=5, checkpoint_every=100),
                  torch.device("cpu"), tmp_path / f"p{phase}.safetensors", train_base=True)
        after = _fixed_batch_loss(model, pairs, phase)
        assert after < before - 0.01, (phase, before, after)


class _Killed(Exception):
    pass


def test_resume_equals_uninterrupted_run(pairs, tmp_path, monkeypatch):
    settings = PhaseSettings(6, 2e-3, batch_size=4, warmup=2, checkpoint_every=2)

    def train(ckpt):
        torch.manual_seed(0)
        model = build_lpsam(MICRO, len(pairs.classes))
        run_phase(model, pairs, 1, settings, torch.device("cpu"), ckpt, train_base=True)
        return model

    clean = train(tmp_path / "clean.safetensors").state_dict()
    real_draw, calls = train_mod.draw_batch, []

    def dying_draw(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # killed during step 4, after the checkpoint at step 2
            raise _Killed
        return real_draw(*args, **kwargs)

    monkeypatch.setattr(train_mod, "draw_batch", dying_draw)
    with pytest.raises(_Killed):
        train(tmp_path / "resumed.safetensors")
    monkeypatch.setattr(train_mod, "draw_batch", real_draw)
    resumed = train(tmp_path / "resumed.safetensors").state_dict()
    for key in clean:
        torch.testing.assert_close(resumed[key], clean[key], msg=key)


def test_resume_with_other_settings_is_refused(pairs, tmp_path):
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes))
    ckpt = tmp_path / "p1.safetensors"
    run_phase(model, pairs, 1, PhaseSettings(1, 1e-3, batch_size=2), torch.device("cpu"), ckpt, True)
    with pytest.raises(ValueError, match="other settings"):
        run_phase(model, pairs, 1, PhaseSettings(2, 1e-3, batch_size=2), torch.device("cpu"), ckpt, True)


def test_balanced_sampling_draws_datasets_equally():
    datasets = torch.tensor([0] * 90 + [1] * 10)
    pool = torch.arange(100)
    gen = torch.Generator().manual_seed(0)
    drawn = train_mod.sample_frames(datasets, pool, 4000, gen, balance=True)
    share_small = (drawn >= 90).float().mean().item()
    assert 0.45 < share_small < 0.55
    plain = train_mod.sample_frames(datasets, pool, 4000, torch.Generator().manual_seed(0), balance=False)
    assert (plain >= 90).float().mean().item() < 0.15


def _iou_head_error(model, pairs) -> float:
    """Mean squared error of the predicted quality against the true IoU on the held-out pairs."""
    from maskgen.lpsam.score_quality import score_iou_pairs

    model.eval()
    scores, ious, _ = score_iou_pairs(model, pairs, torch.device("cpu"))
    return float(((scores - ious) ** 2).mean())


def test_phase2_trains_the_iou_head_where_its_loss_is_used(pairs, tmp_path):
    """SAM frozen (a base checkpoint): phase 2 trains the LPE and the IoU head, whose error on
    held-out pairs falls; the rest of the decoder and the encoder stay as they are."""
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    error_before = _iou_head_error(model, pairs)
    run_phase(model, pairs, 2, PhaseSettings(60, 3e-3, batch_size=8, warmup=5, checkpoint_every=100),
              torch.device("cpu"), tmp_path / "p2.safetensors", train_base=False)
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("mask_decoder.iou_prediction_head.") for k in moved)
    assert any(k.startswith("lpe.") for k in moved)
    assert not [k for k in moved if k.startswith(("image_encoder.", "adapter.", "mask_decoder.transformer."))]
    assert _iou_head_error(model, pairs) < 0.5 * error_before


@pytest.mark.parametrize(("settings", "head_moves", "decoder_moves"), [
    (PhaseSettings(3, 1e-3, batch_size=2, iou_weight=0.0), False, False),  # term dropped, head left alone
    (PhaseSettings(3, 1e-3, batch_size=2, train_decoder=True), True, True),  # the authors' phase 2
])
def test_phase2_iou_weight_zero_and_train_decoder(pairs, tmp_path, settings, head_moves, decoder_moves):
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run_phase(model, pairs, 2, settings, torch.device("cpu"), tmp_path / "p2.safetensors", train_base=False)
    after = model.state_dict()
    moved = {k.split(".")[1] for k in before if k.startswith("mask_decoder.") and not torch.equal(before[k], after[k])}
    assert ("iou_prediction_head" in moved) == head_moves
    assert ("transformer" in moved) == decoder_moves


def test_prompt_replay_needs_the_decoder_and_enters_the_fingerprint_only_when_on():
    with pytest.raises(ValueError, match="needs train_decoder"):
        PhaseSettings(10, 1e-3, prompt_replay=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        PhaseSettings(10, 1e-3, train_decoder=True, prompt_replay=-0.5)
    plain = PhaseSettings(10, 1e-3, train_decoder=True)
    assert plain.fingerprint(2, {}) != PhaseSettings(10, 1e-3, train_decoder=True, prompt_replay=1.0).fingerprint(2, {})
    import dataclasses
    import hashlib
    import json

    before = {"phase": 2, **dataclasses.asdict(plain)}  # the fields before replay existed
    for name in ("augment", "balanced_bce", "prompt_replay", "frame_weighted", "train_detail"):
        before.pop(name)
    assert plain.fingerprint(2, {}) == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]


def test_phase2_loss_with_prompt_replay_adds_the_weighted_gt_prompt_loss(pairs):
    """Same batch, same generator state: replay adds w x the phase-1 loss of GT prompts, drawn
    after the batch (so the batch order of a run does not change)."""
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes))
    model.eval()
    batch = train_mod.draw_batch(pairs, pairs.indices(False), 4, torch.Generator().manual_seed(5), False,
                                 torch.device("cpu"))
    off = PhaseSettings(1, 1e-3, train_decoder=True)
    on = PhaseSettings(1, 1e-3, train_decoder=True, prompt_replay=0.5)
    with torch.no_grad():
        base = phase2_loss(model, *batch, off, torch.Generator().manual_seed(9)).item()
        replayed = phase2_loss(model, *batch, on, torch.Generator().manual_seed(9)).item()
        x = model.preprocess(batch[0])
        prompted = prompted_loss(model, x, model.encode(x), model.detail_features(x), batch[1], batch[2], on,
                                 torch.Generator().manual_seed(9)).item()
    assert prompted > 0
    assert replayed == pytest.approx(base + 0.5 * prompted, rel=1e-5)


def test_prompt_replay_keeps_the_decoder_following_gt_prompts(pairs, tmp_path):
    """Phase 2 trains the decoder on latent tokens; with replay it also keeps learning the GT
    prompts: from the same phase-1 model and batches, the GT-prompt loss on the training frames
    (mean over six prompt draws) ends lower with replay than without."""
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes))
    run_phase(model, pairs, 1, PhaseSettings(40, 3e-3, batch_size=8, warmup=5, checkpoint_every=100),
              torch.device("cpu"), tmp_path / "p1.safetensors", train_base=True)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    idx = pairs.indices(held_out=False)
    images, (target, valid) = pairs.images[idx], pairs.targets(idx)
    losses = {}
    for w in (0.0, 2.0):
        model.load_state_dict(start)
        settings = PhaseSettings(40, 3e-3, batch_size=8, warmup=5, checkpoint_every=100, train_decoder=True,
                                 prompt_replay=w)
        run_phase(model, pairs, 2, settings, torch.device("cpu"), tmp_path / f"p2_{w}.safetensors")
        with torch.no_grad():
            x = model.preprocess(images)
            embeddings, detail = model.encode(x), model.detail_features(x)
            losses[w] = sum(prompted_loss(model, x, embeddings, detail, target, valid, settings,
                                          torch.Generator().manual_seed(s)).item() for s in range(6)) / 6
    assert losses[2.0] < losses[0.0] - 0.01, losses


def test_adaptation_resumes_only_on_the_held_out_split_it_was_trained_on(tmp_path):
    """A changed split (another grouping, held-out share or data) would put frames trained on into
    the hold-out: the phase checkpoints name the split, and a resume on another one is refused."""
    from maskgen.lpsam.adapt import adapt

    pairs = synthetic_pairs(n_per_dataset=4, size=MICRO.input_size, seed=1, held_out_fraction=0.25)
    other = synthetic_pairs(n_per_dataset=4, size=MICRO.input_size, seed=1, held_out_fraction=0.5)
    assert pairs.split_digest() == synthetic_pairs(4, MICRO.input_size, 1, 0.25).split_digest()
    assert pairs.split_digest() != other.split_digest()
    settings, cpu = PhaseSettings(1, 1e-3, batch_size=2), torch.device("cpu")
    adapt(tmp_path, pairs, MICRO, settings, settings, cpu)
    again = adapt(tmp_path, pairs, MICRO, settings, settings, cpu)  # same split: both phases reused
    assert again["phases"]["phase1"]["resumed_done"] and again["phases"]["phase2"]["resumed_done"]
    with pytest.raises(ValueError, match="other settings"):
        adapt(tmp_path, other, MICRO, settings, settings, cpu)


def test_train_detail_moves_the_detail_branch_in_phase_2_and_nothing_of_phase_1_else(pairs, tmp_path):
    from dataclasses import replace

    torch.manual_seed(0)
    model = build_lpsam(replace(MICRO, detail_channels=4, detail_scale=2), len(pairs.classes))
    with pytest.raises(ValueError, match="no detail branch"):
        set_trainable(build_lpsam(MICRO, len(pairs.classes)), 2, False, PhaseSettings(1, 1e-3, train_detail=True))
    for train_detail in (False, True):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        settings = PhaseSettings(3, 1e-2, batch_size=4, warmup=1, train_decoder=True, train_detail=train_detail)
        run_phase(model, pairs, 2, settings, torch.device("cpu"), tmp_path / f"p2-{train_detail}.safetensors")
        after = model.state_dict()
        moved = {k.split(".")[1] for k in before if k.startswith("adapter.") and not torch.equal(before[k], after[k])}
        assert moved == ({"detail"} if train_detail else set())
    assert PhaseSettings(1, 1e-3).fingerprint(2, {}) != PhaseSettings(1, 1e-3, train_detail=True).fingerprint(2, {})
