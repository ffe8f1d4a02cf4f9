"""Pictures of an adaptation: held-out best/median/worst per class, loss curves, linked from report.md."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from maskgen.lpsam.adapt import adapt
from maskgen.lpsam.evaluate import evaluate, heldout_batches
from maskgen.lpsam.figures import ExamplePicker, heldout_examples, loss_curves, present_counts
from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.testing import MICRO, synthetic_pairs
from maskgen.lpsam.train import PhaseSettings

CPU = torch.device("cpu")


def test_examples_are_the_best_median_and_worst_held_out_frames():
    pairs = synthetic_pairs(n_per_dataset=12, size=64, held_out_fraction=0.5)   # 6 held out per dataset
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes)).eval()
    examples = heldout_examples(model, pairs, CPU)
    report = evaluate(model, pairs, CPU)["latent"]
    held = pairs.indices(held_out=True).tolist()
    preds = torch.cat([p for p, _, _ in heldout_batches(model, pairs, "latent", CPU)])
    for t, cls in enumerate(pairs.classes):
        chosen = examples[cls.name]
        assert len(chosen) == 3 and chosen[0].dice >= chosen[1].dice >= chosen[2].dice
        assert all(pairs.dataset_index[e.index] == pairs.datasets.index(cls.dataset) for e in chosen)
        assert all(pairs.held_out[e.index] for e in chosen)
        # the same Dice values as the report: its mean lies between best and worst
        assert chosen[2].dice - 1e-6 <= report[cls.name]["dice_mean"] <= chosen[0].dice + 1e-6
        for e in chosen:   # the mask drawn is the prediction of that frame and class
            np.testing.assert_array_equal(e.prediction, preds[held.index(e.index), t].numpy())


def test_the_picker_sizes_its_store_before_the_pass_and_picks_the_median():
    """The packed predictions go into one array per class sized before the pass (no small array
    per pair to fragment the heap); the sizes are the (frame, class) pairs the pass scores."""
    pairs = synthetic_pairs(n_per_dataset=14, size=64, held_out_fraction=0.5)
    torch.manual_seed(1)
    model = build_lpsam(MICRO, len(pairs.classes)).eval()
    target, valid = pairs.targets(pairs.indices(held_out=True))
    present = (valid & target.flatten(2).any(-1)).sum(0).tolist()
    assert present_counts(pairs, chunk=3) == present and min(present) > 0
    picker = ExamplePicker(pairs)
    assert [len(a) for a in picker.packed] == present
    for batch in heldout_batches(model, pairs, "latent", CPU, batch_size=4):
        picker.observe(*batch)
    picks = picker.picks()
    for t, cls in enumerate(pairs.classes):
        dice = sorted((d for d, _ in picker.scored[cls.name]), reverse=True)
        assert len(dice) == present[t]
        assert [e.dice for e in picks[cls.name]] == [dice[0], dice[(len(dice) - 1) // 2], dice[-1]]


def test_loss_curves_draw_both_phases_and_cope_with_no_steps(tmp_path):
    phases = {"phase1": {"steps": 120, "loss_history": [0.9, 0.5, 0.3]}, "phase2": {"steps": 0, "loss_history": []}}
    out = loss_curves(phases, {"phase1": {"checkpoint_every": 50}, "phase2": {"checkpoint_every": 50}},
                      tmp_path / "f" / "loss.png")
    assert Image.open(out).size[0] > 800


def test_adapt_writes_figures_and_links_them_from_the_report(tmp_path):
    pairs = synthetic_pairs(n_per_dataset=6, size=64, held_out_fraction=0.34)
    settings = PhaseSettings(3, 1e-3, batch_size=2, warmup=1, checkpoint_every=1)
    report = adapt(tmp_path, pairs, MICRO, settings, settings, CPU)
    md = (tmp_path / "report.md").read_text()
    for key in ("heldout_overlays", "loss_curves"):
        path = tmp_path / report["figures"][key]
        assert Image.open(path).size[0] > 500, key
        assert f"]({report['figures'][key]})" in md, key
