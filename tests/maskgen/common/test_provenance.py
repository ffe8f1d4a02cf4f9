"""Reproducible outputs: the same weights always serialise to the same bytes (and sha256)."""

from __future__ import annotations

import hashlib

import torch
from safetensors import safe_open
from safetensors.torch import load

from maskgen.common.files import safetensors_bytes


def test_safetensors_bytes_are_deterministic_and_loadable(tmp_path):
    tensors = {"b": torch.arange(6, dtype=torch.float32).view(2, 3), "a": torch.ones(4, dtype=torch.int64)}
    meta = {"source": "test", "format": "pt", "arch": "resnet18", "step": "7", "note": "Bé"}
    digests = {hashlib.sha256(safetensors_bytes(tensors, meta)).hexdigest() for _ in range(20)}
    assert len(digests) == 1  # the plain writer orders metadata keys at random
    data = safetensors_bytes(tensors, meta)
    for name, value in load(data).items():
        assert torch.equal(value, tensors[name]), name
    (tmp_path / "w.safetensors").write_bytes(data)
    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as f:
        assert f.metadata() == meta
