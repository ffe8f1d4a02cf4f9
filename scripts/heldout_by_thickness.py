"""Held-out Dice of one anatomy class against the structure's thickness and edge contrast.

Why a class misses its target: a thin structure is limited by the mask resolution, a faint one
by the image. For every held-out frame of the class this prints the structure's thickness (twice
the mean distance-transform value on its medial ridge, in pixels at S x S), the contrast-to-noise
of its outer edge ((mean inside - mean in a ring of --ring px outside the structure and the
classes it encloses) / std of that ring; a darker structure has a negative one, and the
visibility ranked below is its absolute value), and its Dice with latent prompts, with one click
at its innermost pixel and with its ground-truth box (``maskgen.lpsam.evaluate``); then
Spearman's rank correlation of each with Dice and the mean Dice per third.

usage: python scripts/heldout_by_thickness.py ADAPT_DIR [--cls myocardium] [--phantom DIR]
       [--tsv OUT.tsv] [--errors OUT.png]

``--phantom DIR`` scores the frames of another phantom (e.g. `maskgen phantom --seed 1`: other
patients, as `maskgen evaluate-adapt --phantom` does) instead of the held-out split; frames with
the same pixels as a training frame are left out.

``--errors`` draws where the latent-prompt masks go wrong on held-out frames spread over the Dice
ranking (worst to best): right pixels white, false positives red, false negatives blue.

The held-out split is rebuilt from ADAPT_DIR/run.json (the adaptation's sources, held-out share,
seed and frame limit), so the frames are the ones in the adaptation's report.
"""

from __future__ import annotations

import click
import numpy as np
import torch
from scipy import ndimage
from scipy.stats import spearmanr


def thickness(mask: np.ndarray) -> float:
    """Twice the mean inscribed radius along the medial ridge of a binary (H, W) mask, in px."""
    dist = ndimage.distance_transform_edt(mask)
    ridge = mask & (dist == ndimage.maximum_filter(dist, 3))
    return float(2 * dist[ridge].mean())


def edge_cnr(image: np.ndarray, mask: np.ndarray, enclosed: np.ndarray, ring: int) -> float:
    """Contrast-to-noise of the mask's outer edge against a ``ring``-px band outside it."""
    solid = mask | enclosed
    band = ndimage.binary_dilation(solid, iterations=ring) & ~solid
    return float((image[mask].mean() - image[band].mean()) / (image[band].std() + 1e-6))


def per_frame(model, pairs, t: int, modes: tuple[str, ...], device: torch.device) -> dict[str, dict]:
    """{mode: {frame index: (Dice, predicted (S, S) bool mask)}} of class ``t`` on the held-out
    (test) frames whose ground truth has it, every mode from one pass that encodes each frame once."""
    from maskgen.lpsam.evaluate import heldout_predictions, overlap_scores

    idx, out, k = pairs.indices(held_out=True), {mode: {} for mode in modes}, 0
    for preds, target, valid in heldout_predictions(model, pairs, modes, device):
        for b in range(target.shape[0]):
            frame = int(idx[k])
            k += 1
            if valid[b, t] and target[b, t].any():
                for mode, pred in preds.items():
                    dice = float(overlap_scores(pred[b, t][None], target[b, t][None])[0])
                    out[mode][frame] = (dice, pred[b, t].numpy())
    return out


def error_overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(H, W) uint8 frame and bool masks -> (H, W, 3) uint8: the frame dimmed, pixels in both masks
    white, false positives red, false negatives blue."""
    rgb = np.repeat(image[..., None].astype(np.float32) * 0.6, 3, axis=-1)
    rgb[pred & truth] = (255, 255, 255)
    rgb[pred & ~truth] = (255, 60, 60)
    rgb[~pred & truth] = (60, 120, 255)
    return rgb.astype(np.uint8)


def error_figure(pairs, latent: dict, label: int, title: str, out: str, n: int = 8,
                 where: str = "held-out") -> None:
    """``n`` ``where`` frames spread over the Dice ranking, each above its error overlay, to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted(latent, key=lambda f: latent[f][0])
    picks = [ranked[int(round(i))] for i in np.linspace(0, len(ranked) - 1, min(n, len(ranked)))]
    fig, axes = plt.subplots(2, len(picks), figsize=(2.2 * len(picks), 4.8), squeeze=False)
    for j, frame in enumerate(picks):
        image, truth = pairs.images[frame].numpy(), pairs.masks[frame].numpy() == label
        axes[0, j].imshow(image, cmap="gray", vmin=0, vmax=255)
        axes[1, j].imshow(error_overlay(image, latent[frame][1], truth))
        axes[0, j].set_title(f"Dice {latent[frame][0]:.2f}", fontsize=9)
        for ax in axes[:, j]:
            ax.set_axis_off()
    fig.suptitle(f"{title}: {where} frames, worst to best (latent prompts); white right, "
                 "red false positive, blue false negative", fontsize=10)
    fig.tight_layout()
    from maskgen.common.files import atomic_path

    with atomic_path(out) as tmp:  # a half-written PNG never replaces a good one
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


@click.command()
@click.argument("adapt_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--cls", "cls_name", default="myocardium", show_default=True,
              help="anatomy class (a substring of its name, e.g. 'camus/myocardium')")
@click.option("--phantom", type=click.Path(exists=True, file_okay=False),
              help="score this phantom's frames of the adaptation's datasets instead of the held-out split")
@click.option("--ring", default=6, show_default=True, help="width of the outer band for the contrast, px")
@click.option("--tsv", type=click.Path(dir_okay=False), help="also write the per-frame table here")
@click.option("--errors", type=click.Path(dir_okay=False),
              help="also draw the latent masks' errors on held-out frames to this PNG")
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda[:N]")
def main(adapt_dir: str, cls_name: str, phantom: str | None, ring: int, tsv: str | None, errors: str | None, device: str) -> None:
    from maskgen.common.devices import resolve_device
    from maskgen.lpsam.artifacts import load_adapt_dir
    from maskgen.lpsam.testset import adaptation_pairs

    dev = resolve_device(device)
    model, _ = load_adapt_dir(adapt_dir)
    model.to(dev)
    pairs = adaptation_pairs(adapt_dir) if phantom is None else phantom_test_set(adapt_dir, phantom, model.config.input_size)
    names = [c.name for c in pairs.classes]
    matches = [i for i, n in enumerate(names) if cls_name in n]
    if len(matches) != 1:
        raise click.UsageError(f"--cls {cls_name!r} matches {[names[i] for i in matches]} of {names}")
    t = matches[0]
    label = pairs.classes[t].label
    dataset = pairs.classes[t].dataset
    # the classes of the same dataset that the structure encloses (e.g. the LV cavity in its wall)
    others = [c.label for c in pairs.classes if c.dataset == dataset and c.label != label]
    scored = per_frame(model, pairs, t, ("latent", "point", "box"), dev)
    latent, point, box = scored["latent"], scored["point"], scored["box"]
    where = "held-out" if phantom is None else f"test ({phantom})"
    rows = []
    for frame in sorted(latent):
        labels, image = pairs.masks[frame].numpy(), pairs.images[frame].numpy().astype(np.float32)
        mask = labels == label
        filled = ndimage.binary_fill_holes(mask) & ~mask & np.isin(labels, others)
        cnr = edge_cnr(image, mask, filled, ring)
        rows.append((frame, latent[frame][0], point[frame][0], box[frame][0], thickness(mask), cnr, abs(cnr)))
    table = np.array(rows)
    click.echo(f"{names[t]}: {len(table)} {where} frames; Dice latent {table[:, 1].mean():.3f}, "
               f"one click {table[:, 2].mean():.3f}, ground-truth box {table[:, 3].mean():.3f}")
    for col, what in ((4, "thickness (px)"), (6, "visibility: |outer-edge CNR|")):
        values = table[:, col]
        rho_l, rho_b = spearmanr(values, table[:, 1]), spearmanr(values, table[:, 3])
        click.echo(f"\n{what}: {values.min():.2f}..{values.max():.2f}, median {np.median(values):.2f}; "
                   f"Spearman with Dice: latent {rho_l.statistic:.2f} (p {rho_l.pvalue:.2g}), "
                   f"box {rho_b.statistic:.2f} (p {rho_b.pvalue:.2g})")
        edges = np.quantile(values, [0, 1 / 3, 2 / 3, 1])
        for i, part in enumerate(("lowest", "middle", "highest")):
            sel = (values >= edges[i]) & ((values < edges[i + 1]) if i < 2 else (values <= edges[i + 1]))
            click.echo(f"  {part} third ({values[sel].min():.2f}..{values[sel].max():.2f}, {sel.sum()} frames): "
                       f"Dice latent {table[sel, 1].mean():.3f}, click {table[sel, 2].mean():.3f}, "
                       f"box {table[sel, 3].mean():.3f}")
    if errors:
        error_figure(pairs, latent, label, names[t], errors, where="held-out" if phantom is None else "test")
        click.echo(f"\nwrote {errors}")
    if tsv:
        np.savetxt(tsv, table, fmt="%.4f", delimiter="\t",
                   header="frame\tlatent_dice\tclick_dice\tbox_dice\tthickness_px\touter_edge_cnr\tvisibility")


def phantom_test_set(adapt_dir: str, phantom: str, size: int):
    """Every frame of the adaptation's datasets under ``phantom`` as a test frame, except frames
    with the same pixels as one it trained on (``maskgen.lpsam.testset``)."""
    from maskgen.lpsam.artifacts import read_meta
    from maskgen.lpsam.data import load_pairs
    from maskgen.lpsam.testset import (
        adaptation_datasets,
        as_test_set,
        training_digests,
        with_adaptation_classes,
    )

    meta = read_meta(adapt_dir)
    sources = [(d, f"{phantom}/{d}") for d in adaptation_datasets(meta)]
    pairs = with_adaptation_classes(load_pairs(sources, size, 0.5, 0), meta)
    pairs, excluded = as_test_set(pairs, training_digests(adapt_dir))
    click.echo(f"{int(pairs.held_out.sum())} test frames ({excluded} left out: the adaptation trained on them)")
    return pairs


if __name__ == "__main__":
    main()
