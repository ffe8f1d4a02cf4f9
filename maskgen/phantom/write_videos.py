"""Writers for the video datasets: butus, camus, hmcqu, pocus (DATASETS.md layouts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from maskgen.phantom.abdomen import abdomen_scene
from maskgen.phantom.cardiac import heart_scene
from maskgen.phantom.encoders import (
    mat_bytes,
    nifti_gz_bytes,
    png_bytes,
    write_avi,
    write_bytes,
    xlsx_bytes,
)
from maskgen.phantom.lung import lung_scene
from maskgen.phantom.softtissue import thyroid_scene
from maskgen.phantom.write_images import RngFor, _size

BUTTERFLY_VIEWS = ("morisons_pouch", "bladder", "plax", "4ch", "2ch", "ivc", "carotid", "lungs",
                   "thyroid")
CAMUS_LABELS = {"lv": 1, "myocardium": 2, "la": 3}


def butterfly_scene(rng: np.random.Generator, view: str, h: int, w: int):
    """A clip scene for one of the nine GrandHack views."""
    if view in ("plax", "4ch", "2ch"):
        return heart_scene(rng, h, w, view, cycles=float(rng.uniform(0.8, 1.6)),
                           phase=float(rng.random()))
    if view == "lungs":
        return lung_scene(rng, h, w, str(rng.choice(["regular", "regular", "pneumonia", "covid19"])),
                          str(rng.choice(["curvilinear", "linear"])))
    if view == "thyroid":
        return thyroid_scene(rng, h, w, str(rng.choice(["none", "benign", "malignant"])), w * 0.06)
    return abdomen_scene(rng, h, w, view)


def butus_patients(n_clips: int) -> int:
    return max(2, -(-n_clips // 3))


def butus_frames(n_clips: int, rng_for: RngFor, frames: int = 12):
    """Every butus frame in writing order: (path relative to the root, scene, time t).

    ``scene.frame(t)`` draws it (the image and its structures); the same ``rng_for`` gives the
    same scenes, so this also recovers the anatomy of a written phantom (``maskgen.generate.oracle``)."""
    n_patients = butus_patients(n_clips)
    n_test = max(1, round(n_patients * 0.15))
    for c in range(n_clips):
        rng = rng_for(c)
        view = BUTTERFLY_VIEWS[c % len(BUTTERFLY_VIEWS)]
        patient = c % n_patients + 1
        split = "test" if patient > n_patients - n_test else "training"
        h, w = _size(rng, (200, 260), (200, 260))
        scene = butterfly_scene(rng, view, h, w)
        folder = Path("butterfly_dataset") / split / str(patient) / view
        for k in range(frames):
            yield folder / f"{view}_{c:03d}_{k:03d}.png", scene, k / max(frames - 1, 1)


def write_butus(root: Path, n_clips: int, rng_for: RngFor, progress=None, frames: int = 12) -> dict:
    """butterfly_dataset/{training,test}/<patient_int>/<view>/<view>_<clip>_<frame>.png.

    Clips rotate through the nine views; three clips per patient; the last ~15% of the
    patients are the test split. Unlabelled (group = patient)."""
    for relative, scene, t in butus_frames(n_clips, rng_for, frames):
        image, _ = scene.frame(t)
        write_bytes(root / relative, png_bytes(image))
        progress and progress.update(1)
    return {"clips": n_clips, "frames": n_clips * frames, "patients": butus_patients(n_clips)}


def write_camus(root: Path, n_patients: int, rng_for: RngFor, progress=None, half: int = 10) -> dict:
    """database_nifti/patientXXXX/patientXXXX_{2CH,4CH}_{ED,ES,half_sequence}[_gt].nii.gz,
    volumes stored (W, H, T); Info_{2CH,4CH}.cfg; database_split/subgroup_*.txt."""
    base = root / "database_nifti"
    names = []
    for p in range(n_patients):
        name = f"patient{p + 1:04d}"
        names.append(name)
        for v, view in enumerate(("2CH", "4CH")):
            rng = rng_for(2 * p + v)
            h, w = _size(rng, (240, 300), (200, 250))
            scene = heart_scene(rng, h, w, view.lower(), cycles=1.0, phase=0.0)
            images, masks = [], []
            for k in range(half):  # ED (phase 0) .. ES (phase 1/2)
                image, st = scene.frame(0.5 * k / (half - 1))
                images.append(image)
                masks.append(scene.mask(st, CAMUS_LABELS))
                progress and progress.update(1)
            vol = np.stack(images, axis=-1).transpose(1, 0, 2)  # (H, W, T) -> (W, H, T)
            gt = np.stack(masks, axis=-1).transpose(1, 0, 2)
            stem = base / name / f"{name}_{view}"
            write_bytes(stem.with_name(stem.name + "_half_sequence.nii.gz"), nifti_gz_bytes(vol))
            write_bytes(stem.with_name(stem.name + "_half_sequence_gt.nii.gz"), nifti_gz_bytes(gt))
            for phase, k in (("ED", 0), ("ES", half - 1)):
                write_bytes(stem.with_name(f"{stem.name}_{phase}.nii.gz"), nifti_gz_bytes(vol[..., k]))
                write_bytes(stem.with_name(f"{stem.name}_{phase}_gt.nii.gz"), nifti_gz_bytes(gt[..., k]))
            areas = [(m == 1).sum() for m in (masks[0], masks[-1])]
            ef = 100.0 * (1 - (areas[1] / max(areas[0], 1)) ** 1.5)
            info = (f"ED: 1\nES: {half}\nNbFrame: {half}\nSex: {rng.choice(['M', 'F'])}\n"
                    f"Age: {int(rng.integers(20, 90))}\n"
                    f"ImageQuality: {rng.choice(['Good', 'Medium', 'Poor'])}\nEF: {ef:.1f}\n"
                    f"FrameRate: 25.0\n")
            write_bytes(base / name / f"Info_{view}.cfg", info.encode())
    n_val, n_test = max(1, n_patients // 10), max(1, n_patients // 5)
    parts = {"training": names[: -n_val - n_test], "validation": names[-n_val - n_test: -n_test],
             "testing": names[-n_test:]}
    for part, items in parts.items():
        write_bytes(root / "database_split" / f"subgroup_{part}.txt", "".join(f"{s}\n" for s in items).encode())
    return {"patients": n_patients, "frames": n_patients * 2 * half}


def write_hmcqu(root: Path, n_videos: int, rng_for: RngFor, progress=None, frames: int = 30,
                fps: int = 25) -> dict:
    """HMC-QU/A4C/<ECHO>.avi, HMC-QU/A4C.xlsx (ECHO, SEG1..SEG6, start, end, masks),
    ``HMC-QU/LV Ground-truth Segmentation Masks/Mask_<ECHO>.mat`` (``predicted`` (F, 224, 224),
    the LV wall over the frames start..end, 1-based inclusive)."""
    base = root / "HMC-QU"
    rows = []
    for i in range(n_videos):
        rng = rng_for(i)
        echo = f"ES{i + 1:04d}_4CH_1"
        h, w = _size(rng, (220, 280), (280, 360))
        cycle = int(rng.integers(16, 22))  # frames per heart beat
        scene = heart_scene(rng, h, w, "4ch", cycles=frames / cycle, phase=float(rng.random()))
        start = int(np.ceil(scene.info["ed_es"][0] * frames)) % cycle + 1
        end = min(start + cycle - 1, frames)
        video, masks = [], []
        for k in range(frames):
            image, st = scene.frame(k / frames)
            video.append(image)
            if start - 1 <= k <= end - 1:
                m = scene.mask(st, {"myocardium": 1})
                masks.append(np.asarray(Image.fromarray(m).resize((224, 224), Image.NEAREST)))
            progress and progress.update(1)
        write_avi(base / "A4C" / f"{echo}.avi", video, fps)
        write_bytes(base / "LV Ground-truth Segmentation Masks" / f"Mask_{echo}.mat",
                    mat_bytes({"predicted": np.stack(masks).astype(np.uint8)}))
        segs = [int(x) for x in rng.random(6) < 0.3]
        rows.append([echo, *segs, start, end, 1])
    header = ["ECHO", "SEG1", "SEG2", "SEG3", "SEG4", "SEG5", "SEG6", "Start Frame", "End Frame",
              "LV Wall Ground-truth Segmentation Masks"]
    write_bytes(base / "A4C.xlsx", xlsx_bytes(header, rows))
    return {"videos": n_videos, "frames": n_videos * frames}


POCUS_CYCLE = ("covid19", "regular", "pneumonia", "covid19", "pneumonia", "regular", "covid19",
               "regular", "pneumonia", "covid19")
POCUS_PREFIX = {"covid19": "Cov", "pneumonia": "Pne", "regular": "Reg", "viral": "Vir"}


def write_pocus(root: Path, n: int, rng_for: RngFor, progress=None, frames: int = 16, fps: int = 6) -> dict:
    """data/pocus_videos/{convex,linear}/<Cls>-phantom-<k>.avi and
    data/pocus_images/{convex,linear}/<Cls>-phantom-img-<k>.png; one in 12 items is ``Vir``
    (excluded from the three-class task by the reader). Videos: 16 frames at 6 fps."""
    counts: dict[str, int] = {}
    for i in range(n):
        rng = rng_for(i)
        cls = "viral" if i % 12 == 11 else POCUS_CYCLE[i % 10]
        probe = "curvilinear" if rng.random() < 0.7 else "linear"
        folder = "convex" if probe == "curvilinear" else "linear"
        h, w = _size(rng, (200, 260), (200, 280))
        pattern = "pneumonia" if cls == "viral" else cls
        scene = lung_scene(rng, h, w, pattern, probe)
        prefix = POCUS_PREFIX[cls]
        if i % 3 == 2:  # a still image
            image, _ = scene.frame(0.0)
            write_bytes(root / "data" / "pocus_images" / folder / f"{prefix}-phantom-img-{i:03d}.png",
                        png_bytes(image))
            progress and progress.update(1)
        else:
            video = []
            for k in range(frames):
                video.append(scene.frame(k / max(frames - 1, 1))[0])
                progress and progress.update(1)
            write_avi(root / "data" / "pocus_videos" / folder / f"{prefix}-phantom-{i:03d}.avi", video, fps)
        counts[cls] = counts.get(cls, 0) + 1
    return counts
