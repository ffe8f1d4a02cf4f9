"""Writers for the image-mask datasets: ddti, tg3k, tn3k, busi, udiat (DATASETS.md layouts).

Every writer takes the dataset root (an empty folder), the number of items and a function
``rng_for(i)`` returning the random source of item i, and returns a summary dict for
phantom.json. Masks are exact renderings of the lesion/gland outlines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from maskgen.phantom.encoders import jpeg_bytes, png_bytes, write_bytes, xlsx_bytes
from maskgen.phantom.softtissue import breast_scene, thyroid_scene

RngFor = Callable[[int], np.random.Generator]
# class of item i: fixed cycles with the released class proportions (every class present
# even in a tiny phantom); the images themselves are random
BUSI_CYCLE = ("benign", "malignant", "normal", "benign", "malignant", "benign", "benign",
              "normal", "benign", "malignant", "benign")  # 6:3:2 ~ 437:210:133


def _size(rng, h_range, w_range) -> tuple[int, int]:
    return int(rng.integers(*h_range)) // 2 * 2, int(rng.integers(*w_range)) // 2 * 2


def write_ddti(root: Path, n: int, rng_for: RngFor, progress=None) -> dict:
    """SAMUS-style copy: ThyroidNodule-DDTI/{img,label}/<stem>.png, 512x512, labels {0, 1};
    MainPatient/{train,val,test}.txt (``1/ThyroidNodule-DDTI/<stem>``; test without class)."""
    sub = root / "ThyroidNodule-DDTI"
    stems = []
    for i in range(n):
        rng = rng_for(i)
        scene = thyroid_scene(rng, 256, 256, nodule="random")
        image, st = scene.frame()
        mask = scene.mask(st, {"lesion": 1})
        stem = f"{i + 1:04d}"
        big = np.asarray(Image.fromarray(image).resize((512, 512), Image.BILINEAR))
        big_mask = np.asarray(Image.fromarray(mask).resize((512, 512), Image.NEAREST))
        write_bytes(sub / "img" / f"{stem}.png", png_bytes(big))
        write_bytes(sub / "label" / f"{stem}.png", png_bytes(big_mask))
        stems.append(stem)
        progress and progress.update(1)
    n_val, n_test = max(1, n // 10), max(1, n // 5)
    splits = {"train": stems[: n - n_val - n_test], "val": stems[n - n_val - n_test: n - n_test],
              "test": stems[n - n_test:]}
    for name, items in splits.items():
        prefix = "" if name == "test" else "1/"
        lines = "".join(f"{prefix}ThyroidNodule-DDTI/{s}\n" for s in items)
        write_bytes(root / "MainPatient" / f"{name}.txt", lines.encode())
    return {"pairs": n, "splits": {k: len(v) for k, v in splits.items()}}


def write_tg3k(root: Path, n: int, rng_for: RngFor, progress=None, frames_per_video: int = 20) -> dict:
    """tg3k/thyroid-image/NNNN.jpg, tg3k/thyroid-mask/NNNN.jpg (gland, JPEG 0/255),
    tg3k/tg3k-trainval.json {"train": [...], "val": [...]} (no video ids, as released)."""
    base = root / "tg3k"
    index, videos = 0, 0
    while index < n:
        rng = rng_for(videos)
        h, w = _size(rng, (200, 260), (220, 300))
        scene = thyroid_scene(rng, h, w, nodule=str(rng.choice(["none", "benign", "malignant"])),
                              frames_motion=w * 0.08)
        count = min(frames_per_video, n - index)
        for k in range(count):
            image, st = scene.frame(k / max(frames_per_video - 1, 1))
            mask = scene.mask(st, {"organ": 1, "lesion": 1, "cyst": 1}) * 255
            write_bytes(base / "thyroid-image" / f"{index:04d}.jpg", jpeg_bytes(image))
            write_bytes(base / "thyroid-mask" / f"{index:04d}.jpg", jpeg_bytes(mask))
            index += 1
            progress and progress.update(1)
        videos += 1
    # the released split cuts by video (the first ~80% of the files are train)
    cut = int(round(n * 0.8))
    split = {"train": list(range(cut)), "val": list(range(cut, n))}
    write_bytes(base / "tg3k-trainval.json", json.dumps(split).encode())
    return {"frames": n, "videos": videos}


def write_tn3k(root: Path, n: int, rng_for: RngFor, progress=None) -> dict:
    """tn3k/{trainval,test}-{image,mask}/NNNN.jpg, label4trainval.csv / label4test.csv
    (``id,label`` with 0 benign, 1 malignant) and tn3k-trainval-fold{0..4}.json."""
    base = root / "tn3k"
    n_test = max(2, n // 5)
    n_tv = n - n_test
    labels = {"trainval": [], "test": []}
    for i in range(n):
        part, k = ("trainval", i) if i < n_tv else ("test", i - n_tv)
        rng = rng_for(i)
        malignant = i % 9 in (1, 3, 5, 7)  # 44% malignant
        h, w = _size(rng, (200, 280), (210, 330))
        scene = thyroid_scene(rng, h, w, nodule="malignant" if malignant else "benign")
        image, st = scene.frame()
        mask = scene.mask(st, {"lesion": 1}) * 255
        write_bytes(base / f"{part}-image" / f"{k:04d}.jpg", jpeg_bytes(image))
        write_bytes(base / f"{part}-mask" / f"{k:04d}.jpg", jpeg_bytes(mask))
        labels[part].append((f"{k:04d}", int(malignant)))
        progress and progress.update(1)
    for part, rows in labels.items():
        text = "id,label\n" + "".join(f"{a},{b}\n" for a, b in rows)
        write_bytes(base / f"label4{part}.csv", text.encode())
    for fold in range(5):
        val = [i for i in range(n_tv) if i % 5 == fold]
        train = [i for i in range(n_tv) if i % 5 != fold]
        write_bytes(base / f"tn3k-trainval-fold{fold}.json",
                    json.dumps({"train": train, "val": val}).encode())
    return {"trainval": n_tv, "test": n_test,
            "malignant": sum(b for rows in labels.values() for _, b in rows)}


def write_busi(root: Path, n: int, rng_for: RngFor, progress=None) -> dict:
    """Dataset_BUSI_with_GT/<cls>/<cls> (<k>).png (RGB) and ``<cls> (<k>)_mask.png`` (0/255);
    a second lesion goes to ``_mask_1.png`` as in the release. Class mix 437:210:133."""
    base = root / "Dataset_BUSI_with_GT"
    counts = {"benign": 0, "malignant": 0, "normal": 0}
    for i in range(n):
        rng = rng_for(i)
        kind = BUSI_CYCLE[i % len(BUSI_CYCLE)]
        h, w = _size(rng, (200, 260), (240, 320))
        scene = breast_scene(rng, h, w, kind)
        image, st = scene.frame()
        counts[kind] += 1
        stem = f"{kind} ({counts[kind]})"
        write_bytes(base / kind / f"{stem}.png", png_bytes(np.repeat(image[..., None], 3, axis=2)))
        masks = [scene.mask(st, {"lesion": 255})]
        if kind == "benign" and rng.random() < 0.1:  # a second, separate lesion: _mask_1
            second = scene.mask(st, {"cyst": 255})
            if second.any():
                masks.append(second)
        for j, m in enumerate(masks):
            suffix = "_mask" if j == 0 else f"_mask_{j}"
            write_bytes(base / kind / f"{stem}{suffix}.png", png_bytes(m))
        progress and progress.update(1)
    return counts


def write_udiat(root: Path, n: int, rng_for: RngFor, progress=None) -> dict:
    """original/NNNNNN.png, GT/NNNNNN.png (0/255), DatasetB.xlsx (Image, Type, diagnosis)."""
    rows = []
    for i in range(n):
        rng = rng_for(i)
        malignant = i % 3 == 1  # 54 of 163 are malignant
        h, w = _size(rng, (200, 260), (240, 320))
        scene = breast_scene(rng, h, w, "malignant" if malignant else "benign")
        image, st = scene.frame()
        name = f"{i + 1:06d}"
        write_bytes(root / "original" / f"{name}.png", png_bytes(image))
        write_bytes(root / "GT" / f"{name}.png", png_bytes(scene.mask(st, {"lesion": 255})))
        diagnosis = str(rng.choice(["Invasive ductal carcinoma", "Ductal carcinoma in situ"])) \
            if malignant else str(rng.choice(["Fibroadenoma", "Cyst", "Papilloma"]))
        rows.append([name, "Malignant" if malignant else "Benign", diagnosis])
        progress and progress.update(1)
    write_bytes(root / "DatasetB.xlsx", xlsx_bytes(["Image", "Type", "diagnosis"], rows))
    return {"benign": sum(r[1] == "Benign" for r in rows), "malignant": sum(r[1] == "Malignant" for r in rows)}
