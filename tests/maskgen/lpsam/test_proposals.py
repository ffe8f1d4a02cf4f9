"""Point- and box-grid proposals through the adapted decoder, and domain randomisation of batches."""

from __future__ import annotations

import math

import pytest
import torch

from maskgen.lpsam import load_predictor
from maskgen.lpsam.augment import NO_AUGMENT, AugmentConfig, domain_randomise
from maskgen.lpsam.proposals import (
    PROPOSAL_MODES,
    ProposalConfig,
    box_grid,
    box_proposals,
    grid_proposals,
    point_grid,
    stability_scores,
)
from maskgen.lpsam.testing import DEFAULT_CLASSES, make_random_adapt_dir, synthetic_pairs


@pytest.fixture(scope="module")
def adapt_dir(tmp_path_factory):
    return make_random_adapt_dir(tmp_path_factory.mktemp("lpsam"), seed=4)


def test_point_grid_and_stability():
    pts = point_grid(2, 256)
    assert pts.tolist() == [[64, 64], [192, 64], [64, 192], [192, 192]]
    logits = torch.tensor([[[3.0, 0.5], [-0.5, -3.0]]])         # > +1: 1 px, > -1: 3 px
    assert stability_scores(logits, 1.0).tolist() == pytest.approx([1 / 3])
    assert stability_scores(torch.full((1, 2, 2), -5.0), 1.0).tolist() == [0.0]


def test_grid_proposals_equal_one_point_at_a_time(adapt_dir):
    predictor = load_predictor(adapt_dir, "cpu")
    model = predictor.model
    frames = synthetic_pairs(2).images[:2]
    cfg = ProposalConfig(mode="grid", points_per_side=3, min_iou=0.0, min_stability=0.0, chunk=4)
    with torch.inference_mode():
        emb = model.encode(model.preprocess(frames))
        logits, scores = grid_proposals(model, emb, cfg)
        assert logits.shape[:2] == (2, 9) and scores.shape == (2, 9)
        for b in range(2):
            for i, (x, y) in enumerate(point_grid(3, 256).tolist()):
                sparse, _ = model.prompt_encoder(points=(torch.tensor([[[x, y]]]), torch.ones(1, 1, dtype=torch.int64)),
                                                 boxes=None, masks=None)
                one, iou = model.decode(emb[b:b + 1], sparse)
                torch.testing.assert_close(logits[b, i], one[0, 0], atol=1e-4, rtol=0)
                assert scores[b, i].item() == pytest.approx(iou[0, 0].clamp(0, 1).item(), abs=1e-5)
        strict = ProposalConfig(mode="grid", points_per_side=3, min_iou=1.0, min_stability=1.0)
        _, filtered = grid_proposals(model, emb, strict)
    kept = ~torch.isnan(filtered)
    assert (filtered[kept] >= 1.0).all() and kept.sum() < kept.numel()


def test_predictor_with_both_proposals(adapt_dir):
    latent = load_predictor(adapt_dir, "cpu")
    both = load_predictor(adapt_dir, "cpu", proposals=ProposalConfig(mode="both", points_per_side=2,
                                                                       min_iou=0.0, min_stability=0.0))
    frames = synthetic_pairs(2).images[:2]
    p0, s0 = latent(frames)
    p1, s1 = both(frames)
    t = len(DEFAULT_CLASSES)
    assert p1.shape == (2, t + 4, 256, 256) and s1.shape == (2, t + 4)
    torch.testing.assert_close(p1[:, :t], p0, atol=1e-5, rtol=0)
    assert both.candidate_classes == [c.name for c in DEFAULT_CLASSES] + [f"grid#{i}" for i in range(4)]
    grid_only = load_predictor(adapt_dir, "cpu", proposals=ProposalConfig(mode="grid", points_per_side=2))
    assert grid_only.candidate_classes == [f"grid#{i}" for i in range(4)]
    assert grid_only(frames)[0].shape == (2, 4, 256, 256)


def test_box_grid_tiles_the_whole_frame():
    boxes = box_grid((0.25, 0.375), 0.5, 256)
    side64 = boxes[(boxes[:, 2] - boxes[:, 0]) == 63]
    side96 = boxes[(boxes[:, 2] - boxes[:, 0]) == 95]
    assert len(side64) == 7 * 7 and len(side96) == 5 * 5 and len(boxes) == 74
    assert sorted(set(side64[:, 0].tolist())) == [0, 32, 64, 96, 128, 160, 192]
    assert sorted(set(side96[:, 1].tolist())) == [0, 48, 96, 144, 160]      # the last row flush with the edge
    assert boxes.min() == 0 and boxes[:, 2:].max() == 255 and ((boxes[:, 2:] - boxes[:, :2]) >= 0).all()
    covered = torch.zeros(256, 256, dtype=torch.bool)
    for x0, y0, x1, y1 in side96.long().tolist():
        covered[y0:y1 + 1, x0:x1 + 1] = True
    assert covered.all()
    assert box_grid((1.0,), 0.5, 256).tolist() == [[0, 0, 255, 255]]


def test_box_proposals_equal_one_box_at_a_time(adapt_dir):
    model = load_predictor(adapt_dir, "cpu").model
    frames = synthetic_pairs(2).images[:2]
    cfg = ProposalConfig(mode="boxes", box_sides=(0.5,), min_iou=0.0, min_stability=0.0, chunk=3)
    boxes = box_grid(cfg.box_sides, cfg.box_overlap, 256)
    with torch.inference_mode():
        emb = model.encode(model.preprocess(frames))
        logits, scores = box_proposals(model, emb, cfg)
        assert logits.shape[:2] == (2, len(boxes)) == (2, 9) and scores.shape == (2, 9)
        for b in range(2):
            for i in range(len(boxes)):
                sparse, _ = model.prompt_encoder(points=None, boxes=boxes[i:i + 1], masks=None)
                one, iou = model.decode(emb[b:b + 1], sparse)
                torch.testing.assert_close(logits[b, i], one[0, 0], atol=1e-4, rtol=0)
                assert scores[b, i].item() == pytest.approx(iou[0, 0].clamp(0, 1).item(), abs=1e-5)


def test_predictor_with_latent_and_box_proposals(adapt_dir):
    latent = load_predictor(adapt_dir, "cpu")
    cfg = ProposalConfig(mode="latent+boxes", box_sides=(0.5, 1.0), min_iou=0.0, min_stability=0.0)
    mixed = load_predictor(adapt_dir, "cpu", proposals=cfg)
    frames = synthetic_pairs(2).images[:2]
    t = len(DEFAULT_CLASSES)
    probs, scores = mixed(frames)
    assert probs.shape == (2, t + 10, 256, 256) and scores.shape == (2, t + 10)
    torch.testing.assert_close(probs[:, :t], latent(frames)[0], atol=1e-5, rtol=0)
    assert mixed.candidate_classes == [c.name for c in DEFAULT_CLASSES] + [f"box#{i}" for i in range(10)]
    assert mixed.candidate_priority.tolist() == [0] * t + [1] * 10       # class masks kept first
    every = ProposalConfig(mode="latent+grid+boxes", points_per_side=2, box_sides=(1.0,))
    assert load_predictor(adapt_dir, "cpu", proposals=every).candidate_classes[t:] == [
        "grid#0", "grid#1", "grid#2", "grid#3", "box#0"]
    for one_ranking in (ProposalConfig(mode="latent+boxes", merge="score"), ProposalConfig(mode="boxes"),
                        ProposalConfig()):
        assert load_predictor(adapt_dir, "cpu", proposals=one_ranking).candidate_priority is None


def test_box_settings_are_part_of_a_store_identity_only_with_boxes():
    assert "box_sides" not in ProposalConfig(mode="both").to_dict()  # stores made before boxes keep their identity
    d = ProposalConfig(mode="latent+boxes", box_sides=[0.5, 0.25]).to_dict()
    assert d["box_sides"] == [0.5, 0.25] and d["box_overlap"] == 0.5
    assert ProposalConfig(mode="boxes").boxes and not ProposalConfig(mode="boxes").latent
    assert "merge" not in ProposalConfig().to_dict() and "merge" not in ProposalConfig(mode="boxes").to_dict()
    assert ProposalConfig(mode="both").to_dict()["merge"] == "latent-first"


@pytest.mark.parametrize("kwargs", [{"mode": "all"}, {"points_per_side": 0}, {"min_iou": 2.0},
                                    {"min_stability": -1.0}, {"stability_offset": 0.0}, {"chunk": 0},
                                    {"box_sides": ()}, {"box_sides": (0.5, 1.5)}, {"box_overlap": 1.0},
                                    {"merge": "union"}])
def test_bad_proposal_settings(kwargs):
    with pytest.raises(ValueError, match=list(kwargs)[0]):
        ProposalConfig(**kwargs)


def test_run_cli_offers_every_proposal_mode():
    from maskgen.cli.run import DEFAULT_PROPOSALS, MERGE_CHOICES, PROPOSAL_CHOICES
    from maskgen.lpsam.proposals import MERGE_RULES

    assert tuple(PROPOSAL_CHOICES) == PROPOSAL_MODES and tuple(MERGE_CHOICES) == MERGE_RULES
    assert ProposalConfig(mode=DEFAULT_PROPOSALS).latent and ProposalConfig(mode=DEFAULT_PROPOSALS).boxes


def _lesion_batch(b=6, s=64):
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    target = ((yy - 32) ** 2 + (xx - 30) ** 2 < 100).float()[None, None].repeat(b, 2, 1, 1)
    target[:, 1] = 0
    images = torch.where(target[:, 0] > 0, 200, 60).to(torch.uint8)
    return images, target


def test_domain_randomise_moves_masks_with_the_anatomy():
    images, target = _lesion_batch()
    out, tgt = domain_randomise(images, target, AugmentConfig(p=1.0), torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == images.shape and tgt.shape == target.shape
    assert set(tgt.unique().tolist()) <= {0.0, 1.0} and not tgt[:, 1].any()
    assert not torch.equal(out, images)
    for b in range(len(out)):
        inside, area = tgt[b, 0] > 0, tgt[b, 0].sum()
        if area > 20:  # the lesion stayed in view: still brighter than its surroundings
            assert out[b][inside].float().mean() > out[b][~inside & (out[b] > 0)].float().mean() + 30
        assert math.isclose(area / target[b, 0].sum(), 1.0, rel_tol=0.8)  # zoom within range
    again = domain_randomise(images, target, AugmentConfig(p=1.0), torch.Generator().manual_seed(0))
    assert torch.equal(again[0], out) and torch.equal(again[1], tgt)  # reproducible from the generator
    same = domain_randomise(images, target, NO_AUGMENT, torch.Generator().manual_seed(0))
    assert torch.equal(same[0], images) and torch.equal(same[1], target)


def test_collapsed_latent_token_is_flagged():
    from maskgen.lpsam.report import collapse_warnings

    def cls(d):
        return {"dice_mean": d}

    heldout = {"latent": {"camus/left atrium": cls(0.02), "ddti/nodule": cls(0.70), "tg3k/gland": cls(0.3),
                          "none": cls(None)},
               "box": {"camus/left atrium": cls(0.94), "ddti/nodule": cls(0.72), "tg3k/gland": cls(0.45),
                       "none": cls(0.9)}}
    warnings = collapse_warnings(heldout)
    assert len(warnings) == 1 and "camus/left atrium collapsed" in warnings[0] and "0.020" in warnings[0]


@pytest.mark.parametrize(("phase2", "says"), [
    ({}, "phase-1 model, upper bound"),                                     # reports made before settings
    ({"train_decoder": False, "prompt_replay": 0.0}, "phase-1 model, upper bound"),
    ({"train_decoder": True, "prompt_replay": 0.0}, "no longer phase 1's"),
    ({"train_decoder": True, "prompt_replay": 1.0}, "GT prompts replayed at weight 1"),
])
def test_report_says_which_decoder_the_box_rows_measure(phase2, says):
    from maskgen.lpsam.report import _box_decoder

    assert says in _box_decoder(phase2)


def test_augment_is_part_of_the_phase_fingerprint_only_when_on():
    from maskgen.lpsam.train import PhaseSettings, draw_batch

    off, on = PhaseSettings(10, 1e-3), PhaseSettings(10, 1e-3, augment=AugmentConfig())
    assert off.augment == NO_AUGMENT and off.fingerprint(1, {}) != on.fingerprint(1, {})
    pairs = synthetic_pairs(4)
    pool = pairs.indices(held_out=False)
    plain = draw_batch(pairs, pool, 3, torch.Generator().manual_seed(1), True, torch.device("cpu"), True)
    again = draw_batch(pairs, pool, 3, torch.Generator().manual_seed(1), True, torch.device("cpu"), True, NO_AUGMENT)
    randomised = draw_batch(pairs, pool, 3, torch.Generator().manual_seed(1), True, torch.device("cpu"), True,
                            AugmentConfig(p=1.0))
    assert all(torch.equal(a, b) for a, b in zip(plain, again, strict=True))
    assert not torch.equal(plain[0], randomised[0]) and torch.equal(plain[2], randomised[2])


def _two_dataset_batch(s=64):
    """Frame 0 of dataset A labels class 0 (a bright disc); frame 1 of dataset B labels class 1
    (a dark square); both frames have a black border outside their field of view."""
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    images = torch.full((2, s, s), 90, dtype=torch.uint8)
    images[:, :4], images[:, -4:] = 0, 0
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 < 36
    square = (yy >= 40) & (yy < 50) & (xx >= 35) & (xx < 45)
    images[0][disc] = 220
    images[1][square] = 10
    target = torch.zeros(2, 2, s, s)
    target[0, 0], target[1, 1] = disc.float(), square.float()
    valid = torch.tensor([[True, False], [False, True]])
    return images, target, valid


def test_copy_paste_moves_a_structure_into_a_frame_that_does_not_label_its_class():
    from maskgen.lpsam.augment import copy_paste

    images, target, valid = _two_dataset_batch()
    for seed in range(6):
        out, tgt, val = copy_paste(images, target, valid, 1.0, torch.Generator().manual_seed(seed))
        assert val.all()                                           # each frame gained the other's class
        for i, c in ((0, 1), (1, 0)):
            pasted = tgt[i, c] > 0.5
            assert pasted.sum() == target[1 - i, 1 - i].sum()      # whole, moved, not resized
            assert not pasted[:4].any() and not pasted[-4:].any()  # inside the field of view
            own = target[i, i] > 0.5
            assert torch.equal(tgt[i, i] > 0.5, own & ~pasted)     # the frame's structure is occluded
            src_value = 220 if c == 0 else 10
            core = pasted.clone()
            for _ in range(2):  # 2 px inside the edge, past the feathered seam
                core[1:-1, 1:-1] = core[1:-1, 1:-1] & core[:-2, 1:-1] & core[2:, 1:-1] & core[1:-1, :-2] & core[1:-1, 2:]
            assert core.any() and (out[i][core].int() - src_value).abs().max() <= 2   # its pixels came along
            assert torch.equal(out[i][~pasted], images[i][~pasted])  # nothing changes outside it
        again = copy_paste(images, target, valid, 1.0, torch.Generator().manual_seed(seed))
        assert all(torch.equal(a, b) for a, b in zip(again, (out, tgt, val), strict=True))
    same = copy_paste(images, target, valid, 0.0, torch.Generator().manual_seed(0))
    assert all(x is y for x, y in zip(same, (images, target, valid), strict=True))
    labelled = torch.ones_like(valid)                              # every class labelled everywhere: no paste
    out, tgt, val = copy_paste(images, target, labelled, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out, images) and torch.equal(tgt, target)


def test_phase_fingerprint_unchanged_without_copy_paste():
    from maskgen.lpsam.augment import AugmentConfig
    from maskgen.lpsam.train import PhaseSettings

    plain = PhaseSettings(steps=10, lr=1e-3, augment=AugmentConfig())
    pasted = PhaseSettings(steps=10, lr=1e-3, augment=AugmentConfig(paste=0.5))
    assert plain.fingerprint(1, {}) != pasted.fingerprint(1, {})
    import dataclasses
    import hashlib
    import json

    before = {"phase": 1, **dataclasses.asdict(plain)}      # the fields as they were before paste existed
    before["augment"].pop("paste")
    before.pop("balanced_bce")
    before.pop("prompt_replay")
    before.pop("frame_weighted")
    before.pop("train_detail")
    want = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert plain.fingerprint(1, {}) == want
