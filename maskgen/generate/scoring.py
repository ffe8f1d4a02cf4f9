"""``maskgen score``: how anatomical a store's masks are, against a labelled dataset's masks.

For every ok frame of a store whose dataset ships masks, each labelled structure of the frame
(each non-zero value of the label map, letter-boxed to the store's S x S exactly as the frame
was) is a *target*. For a set of masks on that frame:

* best-of-K Dice: the highest Dice of any of the frame's masks with the target (what
  pre-training can use: one of its K masks covers the structure);
* top-1 Dice: the Dice of the first slot (the store's highest-scored mask);
* hit rate: the share of targets with a best-of-K Dice >= 0.5;
* masks per frame and coverage (fraction of the S x S frame, per mask).

The same numbers are computed for masks that know nothing of anatomy, made on the same
letter-boxed frames with the same K (``BASELINES``): a 2x2 and a 4x4 grid and SLIC-like
superpixels (the rules of ``pretrain.masks``, the ``--mask-source`` controls of pre-training),
and connected components of a smoothed Otsu threshold (``threshold_components``). Baselines
have no score: their top-1 is their first slot (grid: top-left cell; superpixels: first
centre; threshold: largest component).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from maskgen.datasets.letterbox import Letterbox, letterbox
from maskgen.generate.postprocess import PostprocessConfig, coherent_regions, frame_regions
from maskgen.phantom.quality import otsu_threshold
from maskgen.store import STATUS_OK, MaskStore, unpack_masks

LPSAM = "lpsam"
BASELINES = ("grid2x2", "grid4x4", "superpixel", "threshold")
METHOD_TITLES = {
    LPSAM: "LP-SAM (the store)",
    "grid2x2": "grid 2x2",
    "grid4x4": "grid 4x4",
    "superpixel": "superpixels (K)",
    "threshold": "smoothed-threshold components",
}
HIT_DICE = 0.5


def dice_many(masks: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dice of each of masks (M, S, S) bool with target (S, S) bool -> (M,) float64
    (0 for an empty mask against a non-empty target)."""
    if masks.shape[0] == 0:
        return np.zeros(0)
    flat = masks.reshape(masks.shape[0], -1)
    t = target.reshape(-1)
    inter = (flat & t).sum(1, dtype=np.int64)
    total = flat.sum(1, dtype=np.int64) + int(t.sum())
    return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 0.0)


def threshold_components(image: np.ndarray, k: int, sigma: float = 0.01,
                         post: PostprocessConfig | None = None) -> np.ndarray:
    """Anatomy-free masks: connected components of a smoothed image's Otsu classes.

    The frame (S, S) uint8 is smoothed with a Gaussian of ``sigma`` x S pixels; Otsu's
    threshold over the non-zero (inside the field of view) pixels splits it into a bright and
    a dark class; both classes go through the coherent-region rule (``coherent_regions``:
    holes filled, smoothed, components below ``post.min_area_frac`` of the frame dropped) and
    the components, largest first, are the masks. Returns (M, S, S) bool, M <= k.
    """
    post = post or PostprocessConfig(k=k)
    fov = image > 0
    if not fov.any():
        return np.zeros((0, *image.shape), dtype=bool)
    smooth = ndimage.gaussian_filter(image.astype(np.float32), sigma * image.shape[0])
    thr = otsu_threshold(np.clip(smooth[fov], 0, 255).round().astype(np.uint8))
    comps: list[np.ndarray] = []
    for binary in (fov & (smooth > thr), fov & (smooth <= thr)):
        region = coherent_regions(binary, post)
        labels, n = ndimage.label(region, structure=np.ones((3, 3), dtype=bool))
        comps += [labels == i for i in range(1, n + 1)]
    comps.sort(key=lambda m: -int(m.sum()))
    if not comps:
        return np.zeros((0, *image.shape), dtype=bool)
    return np.stack(comps[:k])


def baseline_masks(name: str, images: np.ndarray, k: int) -> list[np.ndarray]:
    """Anatomy-free masks of store frames (B, S, S) uint8 -> per frame (M, S, S) bool, M <= k."""
    if name == "threshold":
        return [threshold_components(img, k) for img in images]
    import torch

    from pretrain.masks import grid_masks, superpixel_masks

    n, s = images.shape[0], images.shape[-1]
    if name in ("grid2x2", "grid4x4"):
        g = 2 if name == "grid2x2" else 4
        masks = grid_masks(n, g * g, s, "cpu").numpy()
        return [m for m in masks]
    if name == "superpixel":
        with torch.inference_mode():
            masks = superpixel_masks(torch.from_numpy(images), k).numpy()
        return [m[m.any(axis=(1, 2))] for m in masks]
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


@dataclass
class Target:
    """One labelled structure of one frame, scored against every method's masks."""

    frame_id: str
    label: str          # the mask label's name (manifest ``labels``)
    cls: str | None     # the frame's class name (manifest ``classes``) or None
    best: dict[str, float]
    top: dict[str, float]


@dataclass
class FrameStats:
    frame_id: str
    cls: str | None
    counts: dict[str, int]
    coverage: dict[str, list[float]]


def _targets(label_map: np.ndarray, labels: dict[int, str]) -> list[tuple[str, np.ndarray]]:
    values = [int(v) for v in np.unique(label_map) if v != 0]
    return [(labels.get(v, str(v)), label_map == v) for v in values]


def clip_baseline(masks: np.ndarray, region: np.ndarray) -> np.ndarray:
    """A baseline's masks (M, S, S) bool restricted to the frame's content ``region`` (S, S) bool,
    as ``maskgen run`` restricts LP-SAM's (``post_clip_to_frame``); masks left empty are dropped."""
    clipped = masks & region
    return clipped[clipped.any(axis=(1, 2))]


def score_frames(images: np.ndarray, store_masks: list[np.ndarray], label_maps: list[np.ndarray | None],
                 frame_ids: list[str], classes: list[str | None], labels: dict[int, str], k: int,
                 baselines: Iterable[str] = BASELINES, regions: np.ndarray | None = None,
                 ) -> tuple[list[Target], list[FrameStats]]:
    """Score a batch of frames.

    Args:
        images: (B, S, S) uint8 letter-boxed frames (the store's images).
        store_masks: per frame (M, S, S) bool, the store's masks in slot (score) order.
        label_maps: per frame (S, S) uint8 letter-boxed label map, or None (unlabelled).
        labels: {label value: name}; k: the store's K (also the superpixel count).
        regions: (B, S, S) bool, where each frame's image lies in its square; when given the
            baselines' masks are clipped to it (the store's were, ``post_clip_to_frame``).
    """
    methods = {LPSAM: store_masks}
    for name in baselines:
        made = baseline_masks(name, images, k)
        methods[name] = made if regions is None else [clip_baseline(m, regions[b]) for b, m in enumerate(made)]
    pixels = float(images.shape[-1] * images.shape[-2])
    targets: list[Target] = []
    stats: list[FrameStats] = []
    for b, fid in enumerate(frame_ids):
        stats.append(FrameStats(fid, classes[b], {m: int(v[b].shape[0]) for m, v in methods.items()},
                                {m: (v[b].sum(axis=(1, 2)) / pixels).tolist()
                                 for m, v in methods.items()}))
        if label_maps[b] is None:
            continue
        for name, target in _targets(label_maps[b], labels):
            best, top = {}, {}
            for m, v in methods.items():
                d = dice_many(v[b], target)
                best[m] = float(d.max()) if d.size else 0.0
                top[m] = float(d[0]) if d.size else 0.0
            targets.append(Target(fid, name, classes[b], best, top))
    return targets, stats


def _summary(targets: list[Target], stats: list[FrameStats], methods: list[str]) -> dict[str, dict]:
    out = {}
    for m in methods:
        best = np.array([t.best[m] for t in targets])
        top = np.array([t.top[m] for t in targets])
        counts = np.array([s.counts[m] for s in stats])
        cover = np.concatenate([np.asarray(s.coverage[m]) for s in stats]) if stats else np.zeros(0)
        out[m] = {
            "targets": int(best.size),
            "best_dice": float(best.mean()) if best.size else math.nan,
            "best_dice_median": float(np.median(best)) if best.size else math.nan,
            "top1_dice": float(top.mean()) if top.size else math.nan,
            "hit_rate": float((best >= HIT_DICE).mean()) if best.size else math.nan,
            "frames": int(counts.size),
            "masks_per_frame": float(counts.mean()) if counts.size else math.nan,
            "coverage_median": float(np.median(cover)) if cover.size else math.nan,
            "coverage_mean": float(cover.mean()) if cover.size else math.nan,
        }
    return out


def summarise(targets: list[Target], stats: list[FrameStats], methods: list[str]) -> dict[str, dict]:
    """Figures per group: ``all``, ``label=NAME`` when there are several labels, and
    ``class=NAME`` per frame class when the dataset has classes."""
    groups = {"all": (targets, stats)}
    by_label: dict[str, list[Target]] = defaultdict(list)
    for t in targets:
        by_label[t.label].append(t)
    if len(by_label) > 1:
        for name, ts in sorted(by_label.items()):
            ids = {t.frame_id for t in ts}
            groups[f"label={name}"] = (ts, [s for s in stats if s.frame_id in ids])
    names = sorted({s.cls for s in stats if s.cls is not None})
    for c in names:
        groups[f"class={c}"] = ([t for t in targets if t.cls == c], [s for s in stats if s.cls == c])
    return {g: _summary(ts, ss, methods) for g, (ts, ss) in groups.items()}


class ScoreError(ValueError):
    """The store and the dataset do not fit together (other dataset, other frames)."""


def score_store(store: MaskStore, reader, baselines: Iterable[str] = BASELINES, limit: int | None = None,
                batch: int = 16, progress: Callable[[int], None] | None = None) -> dict:
    """Score ``store`` against ``reader``'s masks; returns the report (see ``report_markdown``).

    Frames are matched by frame id; the label map of each is letter-boxed (nearest) to the
    store's S exactly as ``maskgen run`` letter-boxed the frame. ``limit``: first N ok rows.
    ``progress(n)`` is called after every n frames.
    """
    baselines = list(baselines)
    for name in baselines:
        if name not in BASELINES:
            raise ScoreError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    dataset = store.attrs.get("generation", {}).get("dataset")
    if dataset is not None and dataset != reader.name:
        raise ScoreError(f"{store.path} holds frames of '{dataset}', not '{reader.name}'")
    refs = {r.frame_id: r for r in reader.refs()}
    manifest = store.manifest.select(["frame_id", "row", "status", "orig_height", "orig_width"]).to_pylist()
    rows = [r for r in manifest if r["status"] == STATUS_OK]
    missing = [r["frame_id"] for r in rows if r["frame_id"] not in refs]
    if missing:
        raise ScoreError(f"{len(missing)} frame(s) of {store.path} are not in '{reader.name}' at "
                         f"{reader.root} (first: {missing[0]}); score a store against the data it was made from")
    rows.sort(key=lambda r: r["row"])
    if limit is not None:
        rows = rows[:limit]
    labels = dict(reader.spec.labels)
    class_names = reader.spec.classes or {}
    methods = [LPSAM, *baselines]
    targets: list[Target] = []
    stats: list[FrameStats] = []
    size = store.size
    clip = bool(store.attrs.get("generation", {}).get("post_clip_to_frame", False))
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        images, masks, maps, ids, classes = [], [], [], [], []
        for r in part:
            data = store.read(r["row"], r["row"] + 1)
            count = int(data["counts"][0])
            images.append(data["images"][0])
            masks.append(unpack_masks(data["masks"][0, :count]))
            ref = refs[r["frame_id"]]
            label_map = None
            if ref.has_mask:
                frame = reader.load(ref)
                if frame.mask is not None:
                    if frame.mask.shape != (r["orig_height"], r["orig_width"]):
                        raise ScoreError(f"{ref.frame_id}: the dataset's frame is {frame.mask.shape}, the "
                                         f"store's was {(r['orig_height'], r['orig_width'])}")
                    label_map = letterbox(frame.mask, size, nearest=True)[0]
            maps.append(label_map)
            ids.append(ref.frame_id)
            classes.append(None if ref.label is None else class_names.get(ref.label, str(ref.label)))
        regions = None
        if clip:  # the baselines share the store's clip to the frame (a like-for-like comparison)
            regions = frame_regions([Letterbox.fit(r["orig_height"], r["orig_width"], size) for r in part], size)
        t, s = score_frames(np.stack(images), masks, maps, ids, classes, labels, store.k, baselines, regions)
        targets += t
        stats += s
        if progress is not None:
            progress(len(part))
    groups = summarise(targets, stats, methods)
    return {
        "store": str(store.path), "dataset": reader.name, "root": str(reader.root),
        "k": store.k, "size": size, "generation": store.attrs.get("generation", {}),
        "frames_scored": len(stats), "labelled_frames": len({t.frame_id for t in targets}),
        "targets": len(targets), "hit_dice": HIT_DICE, "methods": methods, "groups": groups,
        "margin": margin(groups["all"]),
    }


def margin(summary: dict[str, dict]) -> dict:
    """LP-SAM's best-of-K Dice minus the best baseline's (NaN without targets or baselines)."""
    base = {m: v["best_dice"] for m, v in summary.items() if m != LPSAM and not math.isnan(v["best_dice"])}
    own = summary.get(LPSAM, {}).get("best_dice", math.nan)
    if not base or math.isnan(own):
        return {"best_baseline": None, "lpsam_minus_best_baseline": math.nan}
    best = max(base, key=base.get)
    return {"best_baseline": best, "lpsam_minus_best_baseline": own - base[best]}


def _f(x: float, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def report_markdown(report: dict, groups: Iterable[str] | None = None) -> str:
    """The report as a markdown section: one table per group (all, or those named), methods as rows."""
    lines = [f"## Mask quality: `{report['store']}` against {report['dataset']} masks", "",
             f"{report['frames_scored']} frames scored, {report['labelled_frames']} with a labelled "
             f"structure ({report['targets']} targets); K = {report['k']}, S = {report['size']}. "
             f"Best-of-K: the best Dice of a frame's masks with each target; top-1: the first slot "
             f"(LP-SAM's highest score); hit: best-of-K >= {report['hit_dice']}.", ""]
    mg = report["margin"]
    if mg["best_baseline"] is not None:
        lines += [f"LP-SAM best-of-K Dice minus the best anatomy-free baseline "
                  f"({METHOD_TITLES[mg['best_baseline']]}): {mg['lpsam_minus_best_baseline']:+.3f}", ""]
    for group, summary in report["groups"].items():
        if groups is not None and group not in groups:
            continue
        n = summary[LPSAM]["targets"]
        lines += [f"### {group} ({n} targets, {summary[LPSAM]['frames']} frames)", "",
                  "| masks | best-of-K Dice | median | top-1 Dice | hit (>= 0.5) | masks / frame | "
                  "median coverage |", "|---|---|---|---|---|---|---|"]
        for m, v in summary.items():
            lines.append(f"| {METHOD_TITLES.get(m, m)} | {_f(v['best_dice'])} | {_f(v['best_dice_median'])} | "
                         f"{_f(v['top1_dice'])} | {_f(v['hit_rate'], True)} | {_f(v['masks_per_frame'])} | "
                         f"{_f(v['coverage_median'], True)} |")
        lines.append("")
    return "\n".join(lines)
