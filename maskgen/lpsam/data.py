"""Adaptation pairs: frames + label maps from the registry, at LP-SAM's input size, in memory.

Anatomy classes are the union of the adaptation datasets' label maps (e.g. camus LV
endocardium / myocardium / left atrium, ddti nodule, tg3k gland), named ``dataset/label``.
A frame is labelled only for its own dataset's classes (partial labels): ``valid`` says which
classes a loss or a score may use for a frame.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from maskgen.datasets.framecheck import frame_problem
from maskgen.datasets.frames import CorruptFrameError, Frame
from maskgen.datasets.letterbox import letterbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnatomyClass:
    """One latent token's anatomy: ``dataset`` label map value ``label`` called ``name``."""

    dataset: str
    label: int
    label_name: str

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.label_name}"

    def to_dict(self) -> dict:
        return {"name": self.name, "dataset": self.dataset, "label": self.label, "label_name": self.label_name}


def anatomy_classes(label_maps: dict[str, dict[int, str]]) -> list[AnatomyClass]:
    """Union of label maps ``{dataset: {value: name}}``, in the given dataset order."""
    classes = [AnatomyClass(ds, int(v), str(n)) for ds, labels in label_maps.items()
               for v, n in sorted(labels.items())]
    if not classes:
        raise ValueError(f"the adaptation datasets {list(label_maps)} have no mask labels")
    return classes


@dataclass
class PairSet:
    """Frames and label maps at S x S with per-frame dataset and held-out flag.

    Attributes:
        images: (N, S, S) uint8. masks: (N, S, S) uint8 label maps.
        dataset_index: (N,) int64 index into ``datasets``. held_out: (N,) bool.
        classes: the anatomy classes (latent tokens), T of them.
        frame_ids: N stable frame ids. problems: (frame id, reason) of frames skipped.
        groups: N group keys of the grouped split (patient, video, source file), or None when
            unknown; the held-out share of a dataset is whole groups, so its frames are only as
            independent as its groups are many.
    """

    images: torch.Tensor
    masks: torch.Tensor
    dataset_index: torch.Tensor
    held_out: torch.Tensor
    datasets: list[str]
    classes: list[AnatomyClass]
    frame_ids: list[str]
    problems: list[tuple[str, str]]
    groups: list[str] | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def class_datasets(self) -> torch.Tensor:
        """(T,) int64: the dataset index of every class."""
        return torch.tensor([self.datasets.index(c.dataset) for c in self.classes])

    def class_labels(self) -> torch.Tensor:
        """(T,) uint8: label-map value of every class."""
        return torch.tensor([c.label for c in self.classes], dtype=torch.uint8)

    def indices(self, held_out: bool) -> torch.Tensor:
        return torch.nonzero(self.held_out == held_out).flatten()

    def split_digest(self) -> str:
        """16 hex digits naming the held-out split (a hash of the held-out frame ids): an
        adaptation resumes only on the split it was trained on."""
        held = sorted(self.frame_ids[i] for i in self.indices(held_out=True).tolist())
        return hashlib.sha256("\n".join(held).encode()).hexdigest()[:16]

    def targets(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Binary targets (B, T, S, S) float32 and validity (B, T) bool of frames ``idx``."""
        masks = self.masks[idx]
        target = (masks.unsqueeze(1) == self.class_labels().view(1, -1, 1, 1)).float()
        valid = self.dataset_index[idx].unsqueeze(1) == self.class_datasets().unsqueeze(0)
        return target * valid[..., None, None], valid

    def summary(self) -> dict:
        per = {}
        for i, ds in enumerate(self.datasets):
            sel = self.dataset_index == i
            per[ds] = {"frames": int(sel.sum()), "held_out": int((sel & self.held_out).sum())}
            if self.groups is not None:
                held = torch.nonzero(sel & self.held_out).flatten().tolist()
                per[ds]["held_out_groups"] = len({self.groups[j] for j in held})
        return {"frames": len(self), "datasets": per, "skipped": len(self.problems)}


def frames_to_pairs(frames: Iterable[Frame], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Letter-box frames and their label maps to (N, size, size) uint8 arrays."""
    images, masks = [], []
    for frame in frames:
        images.append(letterbox(frame.image, size)[0])
        masks.append(letterbox(frame.mask, size, nearest=True)[0])
    return np.stack(images), np.stack(masks)


def split_groups(groups: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """Grouped held-out flags (True = held out), via ``maskgen.datasets.folds.grouped_split``."""
    from maskgen.datasets.folds import grouped_split

    return np.asarray(grouped_split(list(groups), fraction, seed=seed), dtype=bool)


def _subsample(n: int, limit: int | None, seed: int) -> np.ndarray:
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def load_pairs(sources: Sequence[tuple[str, str | None]], size: int, held_out_fraction: float = 0.2,
               seed: int = 0, max_frames: int | None = None) -> PairSet:
    """Read every labelled frame of the adaptation datasets through the registry.

    Args:
        sources: (dataset name, root or None) pairs; roots default to the manifests' variables.
        size: S, the model's input side. held_out_fraction: grouped held-out share per dataset.
        max_frames: at most this many labelled frames per dataset (deterministic subsample).
    Corrupt frames are logged, recorded in ``problems`` and skipped.
    """
    from maskgen.datasets.registry import get_spec, open_dataset

    label_maps = {name: get_spec(name).labels for name, _ in sources}
    images, masks, ds_index, held, ids, groups, problems = [], [], [], [], [], [], []
    for i, (name, root) in enumerate(sources):
        reader = open_dataset(name, root)
        refs = [r for r in reader.refs() if r.has_mask]
        problems += [(f"{name}/{p}", r) for p, r in reader.problems]  # listed by refs()
        if not refs:
            raise ValueError(f"dataset {name!r} at {reader.root} has no frames with masks to adapt on")
        refs = [refs[j] for j in _subsample(len(refs), max_frames, seed)]
        keys = [r.group or r.source for r in refs]
        flags = split_groups(keys, held_out_fraction, seed)
        for ref, key, flag in tqdm(list(zip(refs, keys, flags, strict=True)), desc=f"reading {name}", unit="frame"):
            try:
                frame = reader.load(ref)
            except CorruptFrameError as err:
                log.warning("skipping %s: %s", ref.frame_id, err.reason)
                problems.append((ref.frame_id, str(err.reason)))
                continue
            if frame.mask is None:
                problems.append((ref.frame_id, "listed with a mask but loaded without one"))
                continue
            if reason := frame_problem(frame.image):  # the policy of `maskgen run`
                problems.append((ref.frame_id, reason))
                continue
            img, msk = frames_to_pairs([frame], size)
            images.append(img[0])
            masks.append(msk[0])
            ds_index.append(i)
            held.append(bool(flag))
            ids.append(ref.frame_id)
            groups.append(f"{name}/{key}")
    return make_pairset(np.stack(images), np.stack(masks), np.asarray(ds_index), np.asarray(held),
                        [n for n, _ in sources], anatomy_classes(label_maps), ids, problems, groups)


def make_pairset(images: np.ndarray, masks: np.ndarray, dataset_index: np.ndarray, held_out: np.ndarray,
                 datasets: list[str], classes: list[AnatomyClass], frame_ids: list[str],
                 problems: list[tuple[str, str]] | None = None, groups: list[str] | None = None) -> PairSet:
    """Build a ``PairSet`` from arrays (also used by tests with synthetic frames)."""
    if images.shape != masks.shape or images.dtype != np.uint8 or masks.dtype != np.uint8:
        raise ValueError(f"images {images.shape} {images.dtype} and masks {masks.shape} {masks.dtype} "
                         "must be equal-shaped uint8 arrays")
    if groups is not None and len(groups) != len(images):
        raise ValueError(f"{len(groups)} group keys for {len(images)} frames")
    return PairSet(torch.from_numpy(images), torch.from_numpy(masks), torch.as_tensor(dataset_index, dtype=torch.int64),
                   torch.as_tensor(held_out, dtype=torch.bool), list(datasets), list(classes), list(frame_ids),
                   list(problems or []), None if groups is None else list(groups))
