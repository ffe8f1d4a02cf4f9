"""The inference API used by ``maskgen run``: shapes, ranges, determinism, save/load round trip."""

from __future__ import annotations

import json

import pytest
import torch

from maskgen.common.files import sha256_file
from maskgen.lpsam import load_predictor
from maskgen.lpsam.artifacts import load_adapt_dir, save_adapt_dir
from maskgen.lpsam.config import get_config
from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.testing import DEFAULT_CLASSES, make_random_adapt_dir, synthetic_pairs


@pytest.fixture(scope="module")
def adapt_dir(tmp_path_factory):
    return make_random_adapt_dir(tmp_path_factory.mktemp("lpsam"), seed=3)


def test_predictor_shapes_ranges_and_attributes(adapt_dir):
    predictor = load_predictor(adapt_dir, "cpu")
    s = predictor.input_size
    assert s == 256
    frames = synthetic_pairs(2).images[:3]
    probs, scores = predictor(frames)
    t = len(DEFAULT_CLASSES)
    assert probs.shape == (3, t, s, s) and scores.shape == (3, t)
    assert probs.dtype == torch.float32 and scores.dtype == torch.float32
    assert probs.min() >= 0 and probs.max() <= 1 and scores.min() >= 0 and scores.max() <= 1
    assert predictor.candidate_classes == [c.name for c in DEFAULT_CLASSES]
    assert predictor.sha256 == sha256_file(adapt_dir / "lpsam.safetensors")
    assert predictor.config["input_size"] == s and predictor.config["model"]["name"] == "tiny"
    again, again_scores = predictor(frames)
    assert torch.equal(again, probs) and torch.equal(again_scores, scores)  # deterministic on CPU
    single, _ = predictor(frames[1:2])
    torch.testing.assert_close(single[0], probs[1], atol=1e-5, rtol=0)  # frames are independent


def test_multimask_candidates(adapt_dir):
    predictor = load_predictor(adapt_dir, torch.device("cpu"), multimask=True)
    probs, scores = predictor(torch.zeros(1, 256, 256, dtype=torch.uint8))
    assert probs.shape[1] == scores.shape[1] == 3 * len(DEFAULT_CLASSES) == len(predictor.candidate_classes)


def test_bad_input_is_named(adapt_dir):
    predictor = load_predictor(adapt_dir, "cpu")
    with pytest.raises(ValueError, match="float32"):
        predictor(torch.zeros(1, 256, 256))
    with pytest.raises(ValueError, match="128"):
        predictor(torch.zeros(1, 128, 128, dtype=torch.uint8))


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    torch.manual_seed(7)
    model = build_lpsam(get_config("tiny"), len(DEFAULT_CLASSES)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
    save_adapt_dir(tmp_path, model, list(DEFAULT_CLASSES), None)
    loaded, meta = load_adapt_dir(tmp_path)
    assert meta["weights"] == "full" and meta["base_checkpoint"] is None
    assert [c["name"] for c in meta["classes"]] == [c.name for c in DEFAULT_CLASSES]
    x = model.preprocess(synthetic_pairs(2).images[:2])
    with torch.no_grad():
        ref = model.predict_latent(x)
        out = loaded.predict_latent(x)
    assert torch.equal(ref[0], out[0]) and torch.equal(ref[1], out[1])


def test_missing_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="maskgen adapt"):
        load_predictor(tmp_path, "cpu")
    (tmp_path / "lpsam.json").write_text(json.dumps({"format": "other"}))
    (tmp_path / "lpsam.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="format"):
        load_predictor(tmp_path, "cpu")
