"""Each dataset's native layout: exact names, encodings, label values; determinism; readers."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from maskgen.phantom.generate import DATASETS, PhantomScale, generate
from maskgen.phantom.softtissue import thyroid_scene
from maskgen.phantom.write_images import _size

from .conftest import SEED


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_phantom_json_and_all_nine_folders(tiny_phantom):
    out, summary = tiny_phantom
    info = json.loads((out / "phantom.json").read_text())
    assert info["seed"] == SEED and info["code_revision"]
    assert set(info["inputs"]["counts"]) == set(DATASETS)
    for name in DATASETS:
        assert (out / name).is_dir() and not (out / f".{name}.tmp").exists()


def test_butus_grandhack_layout(tiny_phantom):
    out, _ = tiny_phantom
    files = _files(out / "butus")
    assert len(files) == 24
    for f in files:
        parts = f.split("/")
        assert parts[0] == "butterfly_dataset" and parts[1] in ("training", "test")
        assert parts[2].isdigit() and parts[3] in ("morisons_pouch", "bladder") and f.endswith(".png")
    assert _png(out / "butus" / files[0]).dtype == np.uint8


def test_camus_nifti_is_w_h_t(tiny_phantom):
    import nibabel as nib

    root = out = tiny_phantom[0] / "camus"
    pdir = out / "database_nifti" / "patient0001"
    names = sorted(p.name for p in pdir.iterdir())
    for view in ("2CH", "4CH"):
        for suffix in ("ED", "ES", "half_sequence"):
            assert f"patient0001_{view}_{suffix}.nii.gz" in names
            assert f"patient0001_{view}_{suffix}_gt.nii.gz" in names
        assert f"Info_{view}.cfg" in names
    seq = np.asarray(nib.load(pdir / "patient0001_4CH_half_sequence.nii.gz").dataobj)
    gt = np.asarray(nib.load(pdir / "patient0001_4CH_half_sequence_gt.nii.gz").dataobj)
    assert seq.shape == gt.shape and seq.ndim == 3 and seq.shape[0] < seq.shape[1]  # (W, H, T), portrait
    assert set(np.unique(gt)) == {0, 1, 2, 3}
    frame, labels = seq[..., 0].T, gt[..., 0].T  # upright (H, W)
    assert frame[:3].mean() < frame[labels == 2].mean()  # apex at the top, sector black corners
    assert frame[labels == 1].mean() < 0.6 * frame[labels == 2].mean()  # blood darker than wall
    ed = np.asarray(nib.load(pdir / "patient0001_4CH_ED_gt.nii.gz").dataobj)
    assert np.array_equal(ed, gt[..., 0])
    cfg = (pdir / "Info_4CH.cfg").read_text()
    for key in ("ED:", "ES:", "NbFrame:", "Sex:", "Age:", "ImageQuality:", "EF:", "FrameRate:"):
        assert key in cfg
    assert (root / "database_split" / "subgroup_testing.txt").read_text().strip()


def test_ddti_samus_layout(tiny_phantom):
    root = tiny_phantom[0] / "ddti"
    assert _files(root / "ThyroidNodule-DDTI") == [f"{d}/{i:04d}.png" for d in ("img", "label") for i in (1, 2, 3)]
    img, lab = _png(root / "ThyroidNodule-DDTI/img/0001.png"), _png(root / "ThyroidNodule-DDTI/label/0001.png")
    assert img.shape == lab.shape == (512, 512) and img.dtype == np.uint8
    assert set(np.unique(lab)) == {0, 1}
    train = (root / "MainPatient" / "train.txt").read_text().split()
    test = (root / "MainPatient" / "test.txt").read_text().split()
    assert all(x.startswith("1/ThyroidNodule-DDTI/") for x in train)
    assert all(x.startswith("ThyroidNodule-DDTI/") for x in test)


def test_tg3k_jpeg_mask_thresholds_back_to_the_truth(tiny_phantom):
    root = tiny_phantom[0] / "tg3k" / "tg3k"
    assert _files(root) == ["tg3k-trainval.json"] + [f"thyroid-{k}/{i:04d}.jpg" for k in ("image", "mask") for i in range(3)]
    split = json.loads((root / "tg3k-trainval.json").read_text())
    assert sorted(split["train"] + split["val"]) == [0, 1, 2]
    # the truth of frame 0, re-rendered the way the writer drew it
    rng = np.random.default_rng([SEED, DATASETS.index("tg3k"), 0])
    h, w = _size(rng, (200, 260), (220, 300))
    scene = thyroid_scene(rng, h, w, nodule=str(rng.choice(["none", "benign", "malignant"])), frames_motion=w * 0.08)
    image, st = scene.frame(0.0)
    truth = scene.mask(st, {"organ": 1, "lesion": 1, "cyst": 1}).astype(bool)
    jpeg_mask = _png(root / "thyroid-mask" / "0000.jpg")
    assert jpeg_mask.shape == truth.shape and truth.sum() > 500
    assert np.mean((jpeg_mask > 127) == truth) > 0.998
    assert np.abs(_png(root / "thyroid-image" / "0000.jpg").astype(float) - image).mean() < 4


def test_tn3k_layout_and_folds(tiny_phantom):
    root = tiny_phantom[0] / "tn3k" / "tn3k"
    files = _files(root)
    assert "trainval-image/0000.jpg" in files and "test-mask/0000.jpg" in files
    rows = list(csv.DictReader(io.StringIO((root / "label4trainval.csv").read_text())))
    assert len(rows) == 2 and {r["label"] for r in rows} <= {"0", "1"}
    for fold in range(5):
        f = json.loads((root / f"tn3k-trainval-fold{fold}.json").read_text())
        assert all(i % 5 == fold for i in f["val"]) and sorted(f["train"] + f["val"]) == [0, 1]
    mask = _png(root / "trainval-mask" / "0000.jpg")
    assert mask.ndim == 2 and (mask > 127).any()


def test_busi_names_rgb_and_masks(tiny_phantom):
    root = tiny_phantom[0] / "busi" / "Dataset_BUSI_with_GT"
    for path in root.rglob("*.png"):
        cls = path.parent.name
        assert cls in ("benign", "malignant", "normal") and path.name.startswith(f"{cls} (")
        if "_mask" in path.name:
            m = _png(path)
            assert m.ndim == 2 and set(np.unique(m)) <= {0, 255}
            assert (m.any()) == (cls != "normal")
        else:
            assert _png(path).ndim == 3
            assert (path.parent / path.name.replace(".png", "_mask.png")).exists()


def test_udiat_xlsx_and_pairs(tiny_phantom):
    from openpyxl import load_workbook

    root = tiny_phantom[0] / "udiat"
    assert _files(root) == ["DatasetB.xlsx"] + [f"{d}/{i:06d}.png" for d in ("GT", "original") for i in (1, 2, 3)]
    rows = list(load_workbook(root / "DatasetB.xlsx").active.values)
    assert rows[0][:2] == ("Image", "Type") and {r[1] for r in rows[1:]} <= {"Benign", "Malignant"}
    assert set(np.unique(_png(root / "GT" / "000001.png"))) == {0, 255}


def test_hmcqu_avi_xlsx_and_mat(tiny_phantom):
    import av
    from openpyxl import load_workbook
    from scipy.io import loadmat

    root = tiny_phantom[0] / "hmcqu" / "HMC-QU"
    rows = list(load_workbook(root / "A4C.xlsx").active.values)
    echo, start, end, flag = rows[1][0], rows[1][-3], rows[1][-2], rows[1][-1]
    assert flag and 1 <= start < end
    with av.open(str(root / "A4C" / f"{echo}.avi")) as c:
        n = sum(1 for _ in c.decode(video=0))
    masks = loadmat(root / "LV Ground-truth Segmentation Masks" / f"Mask_{echo}.mat")["predicted"]
    assert masks.shape == (end - start + 1, 224, 224) and end <= n
    assert set(np.unique(masks)) == {0, 1}


def test_pocus_prefixes_and_videos(tiny_phantom):
    import av

    root = tiny_phantom[0] / "pocus" / "data"
    files = _files(root)
    assert files and all(f.split("/")[0] in ("pocus_videos", "pocus_images") for f in files)
    assert all(f.split("/")[1] in ("convex", "linear") for f in files)
    assert all(f.split("/")[2][:3] in ("Cov", "Pne", "Reg", "Vir") for f in files)
    video = next(root / f for f in files if f.endswith(".avi"))
    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(frames) == 16 and frames[0].dtype == np.uint8


def _digest(root: Path) -> dict[str, str]:
    return {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in _files(root) if f != "phantom.json"}


def test_same_seed_same_bytes(tmp_path, tiny_phantom):
    subset = ("camus", "udiat", "hmcqu", "tn3k")
    from .conftest import TINY

    generate(tmp_path / "a", TINY, seed=SEED, datasets=subset, show_progress=False)
    a = _digest(tmp_path / "a")
    full = _digest(tiny_phantom[0])
    assert a == {k: v for k, v in full.items() if k.split("/")[0] in subset}
    generate(tmp_path / "b", PhantomScale(1, 1, 1, 1, 1, 1, 2, 1, 1), seed=SEED + 1,
             datasets=("udiat",), show_progress=False)
    assert _digest(tmp_path / "b")["udiat/original/000001.png"] != a["udiat/original/000001.png"]


def test_every_dataset_is_read_by_its_real_reader(tiny_phantom):
    from maskgen.datasets import registry

    out = tiny_phantom[0]
    for name in DATASETS:
        reader = registry.open_dataset(name, out / name)
        refs = reader.refs()
        assert refs, name
        assert not reader.problems, (name, reader.problems)
        ref = next((r for r in refs if r.has_mask), refs[0])
        frame = reader.load(ref)
        assert frame.image.ndim == 2 and frame.image.dtype == np.uint8
        if ref.has_mask:
            assert frame.mask.shape == frame.image.shape, name
            labels = set(np.unique(frame.mask)) - {0}
            assert labels <= set(registry.get_spec(name).labels), (name, labels)
