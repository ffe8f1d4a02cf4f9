"""Trainable parameter counts match the paper's (13 M adapters, 11.1 M LPE for vit_b)."""

from __future__ import annotations

import pytest
import torch

from maskgen.lpsam.config import get_config
from maskgen.lpsam.model import build_lpsam, parameter_counts
from maskgen.lpsam.train import set_trainable


@pytest.fixture(scope="module")
def vit_b_meta():
    with torch.device("meta"):
        return build_lpsam(get_config("vit_b"), num_classes=5)  # camus 3 + ddti 1 + tg3k 1


def test_vit_b_counts_match_paper(vit_b_meta):
    counts = parameter_counts(vit_b_meta)
    assert abs(counts["phase1_adapter"] - 13e6) <= 0.15 * 13e6, counts
    assert abs(counts["phase2_lpe"] - 11.1e6) <= 0.15 * 11.1e6, counts
    assert 85e6 < counts["sam"] < 95e6  # SAM ViT-B is about 91 M


def test_phases_train_only_their_modules(vit_b_meta):
    counts = parameter_counts(vit_b_meta)
    phase1 = sum(p.numel() for p in set_trainable(vit_b_meta, 1, train_base=False))
    assert phase1 == counts["phase1_adapter"]
    phase2 = sum(p.numel() for p in set_trainable(vit_b_meta, 2, train_base=False))
    assert phase2 == counts["phase2_lpe"]
    assert all(not p.requires_grad for p in vit_b_meta.image_encoder.parameters())


def test_print_params_cli():
    from click.testing import CliRunner

    from maskgen.lpsam.cli import adapt

    result = CliRunner().invoke(adapt, ["--print-params", "--model", "vit_b"])
    assert result.exit_code == 0, result.output
    assert "phase1_adapter" in result.output and "12." in result.output
