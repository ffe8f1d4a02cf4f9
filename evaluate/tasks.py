"""The six downstream tasks and how their frames are loaded into memory.

A task names a registry dataset and what is learnt from it: the frame's class
(classification) or its lesion / wall mask (segmentation, foreground = any label > 0).
``load_task`` reads every usable frame through the registry reader, letter-boxes it to the
working resolution and keeps the group keys that the folds respect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from maskgen.datasets.framecheck import frame_problem
from maskgen.datasets.frames import CorruptFrameError
from maskgen.datasets.letterbox import letterbox

log = logging.getLogger(__name__)

CLASSIFICATION, SEGMENTATION = "classification", "segmentation"


@dataclass(frozen=True)
class TaskSpec:
    """One downstream task: ``name`` (e.g. ``busi-seg``), registry ``dataset`` and ``kind``.

    ``classes`` lists the class names of a classification task in label order; they are
    matched against the registry's class map (so a registry id order never matters).
    """

    name: str
    dataset: str
    kind: str
    classes: tuple[str, ...] = ()
    note: str = ""


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("pocus-cls", "pocus", CLASSIFICATION, ("covid19", "pneumonia", "regular"),
             "lung frames; viral excluded; grouped by video"),
    TaskSpec("busi-cls", "busi", CLASSIFICATION, ("benign", "malignant", "normal"),
             "breast lesions; no patient ids released"),
    TaskSpec("udiat-seg", "udiat", SEGMENTATION, (), "UDIAT Dataset B lesions; no patient ids"),
    TaskSpec("tn3k-seg", "tn3k", SEGMENTATION, (),
             "thyroid nodules; trainval and test pooled into the 5 folds; no patient ids"),
    TaskSpec("busi-seg", "busi", SEGMENTATION, (),
             "breast lesions; frames without a lesion (class normal) are excluded"),
    TaskSpec("hmcqu-seg", "hmcqu", SEGMENTATION, (), "LV wall in A4C echo; grouped by recording"),
)}


def resolve_tasks(names: str | list[str] | None) -> list[TaskSpec]:
    """Task specs from a comma list; a dataset name stands for all its tasks; None or ``all`` -> all six.

    Raises:
        ValueError: a name that is neither a task nor a dataset with tasks.
    """
    if names is None or (isinstance(names, str) and names.strip().lower() == "all"):
        return list(TASKS.values())
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    chosen: list[TaskSpec] = []
    for raw in names:
        name = raw.strip().lower()
        matches = [TASKS[name]] if name in TASKS else [t for t in TASKS.values() if t.dataset == name]
        if not matches:
            raise ValueError(f"task {raw!r} is not one of {sorted(TASKS)} (or a dataset name: "
                             f"{sorted({t.dataset for t in TASKS.values()})})")
        chosen += [t for t in matches if t not in chosen]
    return chosen


@dataclass
class TaskData:
    """A task's frames in memory, in the reader's deterministic order.

    Attributes:
        images: (N, S, S) uint8 letter-boxed frames.
        labels: (N,) int64 class ids in ``class_names`` order (classification) or None.
        masks: (N, S, S) uint8 binary foreground (segmentation) or None.
        groups: (N,) str group keys (patient, video, recording; the source where none exists).
        frame_ids: (N,) str ``FrameRef.frame_id`` of each frame.
        refs: the FrameRef of each frame (for ``write_folds``).
        grouped: whether frames share groups (False: every frame is its own group, i.e. the
            dataset has no group key such as patient or video).
        group_key: the registry manifest's description of the group key.
        problems: (frame_id, reason) of frames that could not be loaded (skipped, reported).
        excluded: why frames were left out, with counts.
    """

    task: TaskSpec
    images: np.ndarray
    labels: np.ndarray | None
    masks: np.ndarray | None
    groups: np.ndarray
    frame_ids: np.ndarray
    refs: list
    class_names: tuple[str, ...]
    grouped: bool
    group_key: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def _registry_spec(dataset: str):
    try:
        from maskgen.datasets.registry import get_spec
        return get_spec(dataset)
    except (ImportError, KeyError, ValueError):
        return None


def class_ids(task: TaskSpec, registry_classes: dict[int, str] | None) -> dict[int, int]:
    """Map registry class id -> task label (position in ``task.classes``).

    Without a registry class map the reader's ids are taken to be the task's order.

    Raises:
        ValueError: a task class the registry does not know.
    """
    if not registry_classes:
        return {i: i for i in range(len(task.classes))}
    by_name = {str(v).lower(): int(k) for k, v in registry_classes.items()}
    mapping = {}
    for position, wanted in enumerate(task.classes):
        hits = [i for n, i in by_name.items() if n == wanted] or \
               [i for n, i in by_name.items() if n[:3] == wanted[:3]]
        if len(hits) != 1:
            raise ValueError(f"task {task.name}: class {wanted!r} not found once in the registry's "
                             f"classes {registry_classes}")
        mapping[hits[0]] = position
    return mapping


def _select(task: TaskSpec, refs: list, id_map: dict[int, int]) -> tuple[list, dict[str, int]]:
    if task.kind == CLASSIFICATION:
        kept = [r for r in refs if r.label is not None and int(r.label) in id_map]
        return kept, {"label outside the task's classes": len(refs) - len(kept)}
    kept = [r for r in refs if r.has_mask]
    return kept, {"no mask": len(refs) - len(kept)}


def _subsample(refs: list, max_frames: int, seed: int) -> list:
    if not max_frames or len(refs) <= max_frames:
        return refs
    keep = np.sort(np.random.default_rng(seed).choice(len(refs), size=max_frames, replace=False))
    return [refs[i] for i in keep]


def load_task(task: TaskSpec, reader, resolution: int, max_frames: int = 0, seed: int = 0,
              progress: bool = True) -> TaskData:
    """Read a task's usable frames through ``reader`` (a registry ``DatasetReader``).

    Frames that fail to decode or fail ``maskgen.datasets.framecheck.frame_problem`` (oversized, tiny,
    blank) are recorded in ``problems`` with their reason and skipped; segmentation frames
    whose mask is empty (e.g. BUSI ``normal``) are excluded and counted.

    Raises:
        ValueError: the reader yields no usable frame for the task.
    """
    spec = _registry_spec(task.dataset)
    id_map = class_ids(task, getattr(spec, "classes", None)) if task.kind == CLASSIFICATION else {}
    refs, excluded = _select(task, list(reader.refs()), id_map)
    refs = _subsample(refs, max_frames, seed)
    images, masks, labels, kept = [], [], [], []
    problems = [(str(p), str(r)) for p, r in getattr(reader, "problems", [])]  # listing problems
    excluded["empty mask"] = 0
    for ref in tqdm(refs, desc=f"load {task.name}", disable=not progress, leave=False):
        try:
            frame = reader.load(ref)
        except CorruptFrameError as err:
            problems.append((ref.frame_id, str(err.reason)))
            continue
        except Exception as err:  # noqa: BLE001 - per-frame failure policy: record and go on
            problems.append((ref.frame_id, f"unreadable: {type(err).__name__}: {err}"))
            continue
        if reason := frame_problem(frame.image):  # the policy of `maskgen run` (tiny, blank, ...)
            problems.append((ref.frame_id, reason))
            continue
        image, _ = letterbox(np.ascontiguousarray(frame.image, dtype=np.uint8), resolution)
        if task.kind == SEGMENTATION:
            if frame.mask is None:
                problems.append((ref.frame_id, "reader returned no mask for a has_mask frame"))
                continue
            mask, _ = letterbox((frame.mask > 0).astype(np.uint8), resolution, nearest=True)
            if not mask.any():
                excluded["empty mask"] += 1
                continue
            masks.append(mask)
        else:
            labels.append(id_map[int(ref.label)])
        images.append(image)
        kept.append(ref)
    if not kept:
        raise ValueError(f"task {task.name}: no usable frame in dataset {task.dataset!r} "
                         f"(excluded: {excluded}, problems: {len(problems)})")
    groups = [r.group or r.source for r in kept]
    return TaskData(
        task=task,
        images=np.stack(images),
        labels=np.asarray(labels, dtype=np.int64) if task.kind == CLASSIFICATION else None,
        masks=np.stack(masks) if task.kind == SEGMENTATION else None,
        groups=np.asarray(groups, dtype=object),
        frame_ids=np.asarray([r.frame_id for r in kept], dtype=object),
        refs=kept,
        class_names=task.classes,
        grouped=len(set(groups)) < len(groups),
        group_key=str(getattr(spec, "group_key", "") or ""),
        problems=problems,
        excluded={k: v for k, v in excluded.items() if v},
    )

