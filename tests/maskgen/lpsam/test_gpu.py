"""CUDA + bf16 autocast: vit_b trains a step of each phase and predicts (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from maskgen.common.devices import resolve_device
from maskgen.lpsam.config import get_config
from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.predictor import load_predictor
from maskgen.lpsam.testing import make_random_adapt_dir, synthetic_pairs
from maskgen.lpsam.train import PhaseSettings, run_phase


@pytest.mark.gpu
def test_vit_b_phases_on_cuda_bf16(tmp_path):
    device = resolve_device("auto")
    pairs = synthetic_pairs(6, size=256)
    torch.manual_seed(0)
    model = build_lpsam(get_config("vit_b"), len(pairs.classes)).to(device)
    for phase in (1, 2):
        out = run_phase(model, pairs, phase, PhaseSettings(3, 1e-4, batch_size=4, checkpoint_every=3),
                        device, tmp_path / f"p{phase}.safetensors")
        assert all(loss == loss and loss < 10 for loss in out["loss_history"]), out


@pytest.mark.gpu
def test_predictor_on_cuda(tmp_path):
    device = resolve_device("auto")
    predictor = load_predictor(make_random_adapt_dir(tmp_path), device)
    frames = synthetic_pairs(2).images[:4].to(device)
    probs, scores = predictor(frames)
    assert probs.device.type == "cuda" and probs.dtype == torch.float32
    assert probs.shape == (4, 5, 256, 256) and probs.min() >= 0 and probs.max() <= 1
    cpu = load_predictor(tmp_path, "cpu")(frames.cpu())[0]
    assert (probs.cpu() - cpu).abs().max() < 0.1  # bf16 vs fp32
