"""Generate the phantom: every dataset in its native layout under OUT/<dataset>/.

Each dataset is written into a temporary folder ``OUT/.<dataset>.tmp`` and renamed into place
when complete, so a killed run never leaves a half-written dataset under its real name. Item i
of dataset d draws from ``numpy.random.default_rng([seed, d, i])``: the output is the same,
byte for byte, for a seed, and a subset (``datasets=``) equals the same folders of a full run.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from maskgen.common.provenance import write_run_info
from maskgen.phantom import write_images as wi
from maskgen.phantom import write_videos as wv

log = logging.getLogger(__name__)

DATASETS = ("butus", "camus", "ddti", "tg3k", "pocus", "busi", "udiat", "tn3k", "hmcqu")

# name -> (writer, frames rendered per item at the default settings)
WRITERS = {
    "butus": (wv.write_butus, 12),
    "camus": (wv.write_camus, 20),
    "ddti": (wi.write_ddti, 1),
    "tg3k": (wi.write_tg3k, 1),
    "pocus": (wv.write_pocus, 11),
    "busi": (wi.write_busi, 1),
    "udiat": (wi.write_udiat, 1),
    "tn3k": (wi.write_tn3k, 1),
    "hmcqu": (wv.write_hmcqu, 30),
}


@dataclass(frozen=True)
class PhantomScale:
    """Items per dataset: butus clips, camus patients, hmcqu/pocus videos (+ images), else frames."""

    butus: int
    camus: int
    ddti: int
    tg3k: int
    pocus: int
    busi: int
    udiat: int
    tn3k: int
    hmcqu: int


SCALES = {
    "quick": PhantomScale(butus=20, camus=10, ddti=40, tg3k=60, pocus=30, busi=60, udiat=40,
                          tn3k=60, hmcqu=10),
    "full": PhantomScale(butus=200, camus=100, ddti=400, tg3k=600, pocus=300, busi=600,
                         udiat=400, tn3k=600, hmcqu=100),
}


def build_scale(name: str) -> PhantomScale:
    if name not in SCALES:
        raise ValueError(f"phantom scale {name!r} is not one of {sorted(SCALES)}")
    return SCALES[name]


def generate(out: str | Path, scale: str | PhantomScale = "quick", seed: int = 0,
             datasets: tuple[str, ...] | None = None, show_progress: bool = True) -> dict:
    """Write the phantom datasets under ``out``; returns the per-dataset summary.

    Args:
        out: output folder (created); existing ``out/<dataset>`` folders are replaced.
        scale: ``quick``, ``full`` or a ``PhantomScale``.
        seed: master seed; same seed, same bytes.
        datasets: subset of ``DATASETS`` (default: all nine).
    """
    sizes = build_scale(scale) if isinstance(scale, str) else scale
    chosen = tuple(datasets) if datasets else DATASETS
    unknown = [d for d in chosen if d not in DATASETS]
    if unknown:
        raise ValueError(f"unknown phantom dataset(s) {unknown}; choose from {list(DATASETS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(getattr(sizes, d) * WRITERS[d][1] for d in chosen)
    summary = {}
    with tqdm(total=total, desc="phantom", unit="frame", disable=not show_progress) as bar:
        for name in chosen:
            bar.set_postfix_str(name)
            summary[name] = _write_one(out, name, getattr(sizes, name), seed, bar)
    config = {"scale": scale if isinstance(scale, str) else "custom", "sizes": asdict(sizes),
              "datasets": list(chosen)}
    write_run_info(out, config, seed, name="phantom.json", counts=summary)
    return summary


def dataset_rng(seed: int, name: str):
    """i -> the generator of item i of dataset ``name`` under master ``seed`` (the one seeding rule:
    the writers use it, and ``maskgen.generate.oracle`` uses it to redraw a written phantom)."""
    d_index = DATASETS.index(name)
    return lambda i: np.random.default_rng([seed, d_index, i])


def _write_one(out: Path, name: str, n: int, seed: int, bar) -> dict:
    tmp, final = out / f".{name}.tmp", out / name
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    writer = WRITERS[name][0]
    try:
        counts = writer(tmp, n, dataset_rng(seed, name), bar)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    log.info("phantom %s: %s", name, counts)
    return counts
