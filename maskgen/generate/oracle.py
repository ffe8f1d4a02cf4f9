"""The phantom's own anatomy as a mask store: the oracle arm of "does anatomy help?".

A phantom knows what it drew. ``write_oracle_store`` takes a store that ``maskgen run`` made
from the phantom's butus frames and writes a copy whose masks are each frame's ground-truth
anatomy (the scenes regenerated from the phantom's seed): the same frames, rows, manifest and
chunking; only the masks, their scores (1.0) and counts differ. Pre-training on it bounds what
perfect anatomy masks can add on this phantom, beside LP-SAM's masks and the anatomy-free
controls, with everything else shared.

Masks: one per 8-connected region of each anatomy role (``maskgen.phantom.scene.ROLES``),
letter-boxed as the frames are (nearest neighbour), regions smaller than the template store's
``post_min_area_frac`` of the frame (its post-processing's size rule) dropped, the K largest
kept. Every regenerated frame is checked against the store's image, so a store made from
another phantom (seed, scale) is refused rather than paired with the wrong anatomy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from maskgen.datasets.letterbox import letterbox
from maskgen.generate.postprocess import split_components
from maskgen.phantom.generate import dataset_rng
from maskgen.phantom.write_videos import butus_frames
from maskgen.store import open_store, pack_masks, store_attributes
from maskgen.store.writer import create_store, write_manifest, write_region

ORACLE_DATASET = "butus"


class OracleError(ValueError):
    """The template store and the phantom do not belong together."""


def anatomy_masks(anatomy: np.ndarray, k: int, min_area: int) -> np.ndarray:
    """(S, S) uint8 role map (0 = no anatomy) -> (m, S, S) bool, m <= k: every connected region
    of every role with >= ``min_area`` pixels, the largest first (ties: role, raster order)."""
    regions = []
    for role in np.unique(anatomy):
        if role == 0:
            continue
        regions += split_components(anatomy == role, max(1, min_area))
    regions.sort(key=lambda m: -int(m.sum()))  # stable: equal areas keep role and raster order
    size = anatomy.shape
    return np.stack(regions[:k]) if regions else np.zeros((0, *size), bool)


def write_oracle_store(template: str | Path, phantom: str | Path, out: str | Path, progress: bool = True) -> dict:
    """Write OUT: TEMPLATE (a ``maskgen run --dataset butus`` store of the phantom at PHANTOM)
    with the phantom's ground-truth anatomy as its masks. Returns a summary (frames, masks per
    frame, coverage).

    Raises:
        OracleError: TEMPLATE is not a butus store of this phantom (or PHANTOM has no phantom.json).
    """
    store = open_store(template)
    info_path = Path(phantom) / "phantom.json"
    if not info_path.is_file():
        raise OracleError(f"{phantom} has no phantom.json: give the folder `maskgen phantom --out` wrote")
    info = json.loads(info_path.read_text())
    seed, n_clips = int(info["seed"]), int(info["config"]["sizes"][ORACLE_DATASET])
    rows = sorted(store.manifest.to_pylist(), key=lambda r: r["row"])
    if {r["dataset"] for r in rows} != {ORACLE_DATASET}:
        raise OracleError(f"{template} holds {sorted({r['dataset'] for r in rows})}, not only {ORACLE_DATASET} frames")
    frames = {str(path): (scene, t) for path, scene, t in butus_frames(n_clips, dataset_rng(seed, ORACLE_DATASET))}
    k, size = store.k, store.size
    generation = dict(store.attrs.get("generation", {}))
    min_area = round(float(generation.get("post_min_area_frac", 0.0)) * size * size)
    settings = {"dataset": ORACLE_DATASET, "frames": len(rows), "size": size, "chunk": store.chunk,
                "mask_source": "phantom ground-truth anatomy (oracle)", "phantom_seed": seed,
                "template_store": str(Path(template).resolve()), "oracle_min_area": min_area}
    create_store(out, len(rows), size, k, store_attributes(k, size, "0" * 64, settings), chunk=store.chunk)
    manifest, counts_all, coverage = [], [], []
    for start in tqdm(range(0, len(rows), store.chunk), desc="oracle masks", unit="chunk", disable=not progress):
        block = store.read(start, min(start + store.chunk, len(rows)))
        n = len(block["images"])
        masks = np.zeros((n, k, size, size), bool)
        counts = np.zeros(n, np.uint8)
        for i, row in enumerate(rows[start:start + n]):
            if row["source"] not in frames:
                raise OracleError(f"{template}: frame {row['source']} is not one of this phantom's butus frames")
            scene, t = frames[row["source"]]
            image, structures = scene.frame(t)
            if not np.array_equal(letterbox(image, size)[0], block["images"][i]):
                raise OracleError(f"{template}: frame {row['source']} differs from the phantom at {phantom} "
                                  "(another seed or scale?)")
            regions = anatomy_masks(letterbox(scene.anatomy(structures), size, nearest=True)[0], k, min_area)
            masks[i, :len(regions)] = regions
            counts[i] = len(regions)
            coverage.append(float(regions.any(0).mean()) if len(regions) else 0.0)
            manifest.append({**row, "mask_count": int(counts[i]), "mean_score": 1.0 if counts[i] else float("nan")})
        scores = np.where(np.arange(k)[None] < counts[:, None], 1.0, np.nan).astype(np.float32)
        write_region(out, start, {"images": block["images"], "masks": pack_masks(masks), "scores": scores,
                                  "counts": counts})
        counts_all += counts.tolist()
    write_manifest(out, manifest)
    return {"frames": len(rows), "masks_per_frame": float(np.mean(counts_all)) if counts_all else 0.0,
            "frames_without_anatomy": int(sum(c == 0 for c in counts_all)),
            "coverage": float(np.mean(coverage)) if coverage else 0.0}
