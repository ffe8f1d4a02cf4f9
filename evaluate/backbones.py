"""Backbones to evaluate: ``random``, our ``pretrain export`` files, timm/torchvision ResNets.

Every checkpoint becomes a torchvision ``ResNet`` (the body Mask R-CNN's FPN is built on).
Key names are mapped explicitly in one place (``canonical_keys``): timm and torchvision
ResNets share their parameter names, so the mapping strips wrapper prefixes (``module.``,
``backbone.body.``, ``encoder.`` ...) and drops the classifier (``fc.*``); every remaining key
is then checked against the model (strict loading; missing or unexpected keys are errors).

A backbone may carry an FPN (torchvision ``FeaturePyramidNetwork`` names): our exports' sibling
``FILE.fpn.safetensors`` (``pretrain.export.fpn_path``), or, for ``random``, the step-0 FPN of
pre-training. Segmentation heads load it; a backbone without one gets a new FPN.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision

from maskgen.common.files import safetensors_bytes, sha256_file
from pretrain.archs import DEFAULT_ARCH

log = logging.getLogger(__name__)

ARCHS = {  # blocks per stage, bottleneck?
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
    "resnet101": ((3, 4, 23, 3), True),
    "resnet152": ((3, 8, 36, 3), True),
}
# wrapper prefixes seen in the wild, stripped when every backbone key carries one
PREFIXES = ("module.", "backbone.body.", "backbone.", "encoder.", "model.", "body.", "base_encoder.")
HEAD_PREFIXES = ("fc.",)  # classifier of timm / torchvision ResNets: never transferred


class CheckpointError(ValueError):
    """A checkpoint file that cannot become a ResNet backbone (message says why)."""


@dataclass
class Backbone:
    """A backbone to evaluate.

    Attributes:
        name: method name in the report (``random``, ``anaus``, ``imagenet``...).
        arch: torchvision/timm ResNet name.
        state: canonical state dict (torchvision names, no ``fc``), or None for random init.
        path / sha256: the file it came from.
        provenance: the export's JSON sidecar (``FILE.json``) when present.
        fpn: FPN state dict (torchvision ``FeaturePyramidNetwork`` keys) or None (a new FPN).
        fpn_source: how the FPN was made: ``pre-trained`` (our export), ``step-0`` (the
            reference's initial FPN) or ``new`` (torchvision's default init, no FPN in the file).
        fpn_sha256: digest of the FPN tensors (part of a cell's protocol), None without one.
    """

    name: str
    arch: str
    state: dict[str, torch.Tensor] | None = None
    path: str | None = None
    sha256: str | None = None
    provenance: dict = field(default_factory=dict)
    fpn: dict[str, torch.Tensor] | None = None
    fpn_source: str = "new"
    fpn_sha256: str | None = None

    @property
    def fpn_channels(self) -> int | None:
        """Output channels of the carried FPN (None: no FPN)."""
        return None if self.fpn is None else int(self.fpn["layer_blocks.0.0.weight"].shape[0])

    def build(self) -> torchvision.models.ResNet:
        """A fresh torchvision ResNet with these weights (``fc`` left at its random init)."""
        model = getattr(torchvision.models, self.arch)(weights=None)
        if self.state is not None:
            load_backbone_state(model, self.state)
        return model


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or ``.pth``/``.pt`` file (``weights_only=True``, no pickle).

    A ``.pth`` holding ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped.
    """
    from maskgen.common.weightfiles import WeightsFileError, read_safetensors, read_torch_weights

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a file")
    try:
        if path.suffix == ".safetensors":
            return read_safetensors(path, "checkpoint")
        obj = read_torch_weights(path, "checkpoint")
    except WeightsFileError as err:
        raise CheckpointError(str(err)) from err
    for key in ("state_dict", "model", "backbone"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointError(f"checkpoint {str(path)!r} does not hold a flat state dict of tensors")
    return obj


def canonical_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map timm / torchvision / wrapped ResNet keys to torchvision names, without ``fc``.

    Prefixes are stripped only when every key (other than heads) carries the same one, so a
    partial match never silently renames half a model.
    """
    state = dict(state)
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}


def infer_arch(state: dict[str, torch.Tensor]) -> str:
    """ResNet depth from the canonical keys: blocks per stage and whether blocks are bottlenecks.

    Raises:
        CheckpointError: the keys are not those of a torchvision/timm ResNet.
    """
    blocks = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    bottleneck = any(re.match(r"layer1\.0\.conv3\.", k) for k in state)
    for arch, spec in ARCHS.items():
        if spec == (tuple(blocks), bottleneck):
            return arch
    sample = sorted(state)[:5]
    raise CheckpointError(f"state dict is not a plain ResNet (blocks per stage {blocks}, "
                          f"bottleneck={bottleneck}; first keys {sample}); give --arch or export "
                          "the backbone with timm/torchvision names")


def load_backbone_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model`` after an explicit key and shape check.

    ``fc.*`` of the model keeps its initialisation; a missing BatchNorm ``num_batches_tracked``
    counter (some exporters drop it) keeps the model's. Anything else missing or unexpected
    raises ``CheckpointError`` naming the keys.
    """
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(HEAD_PREFIXES)}
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"backbone keys do not match {type(model).__name__}: "
                              f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
                              f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}")
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        raise CheckpointError(f"shape mismatch for {bad[:6]}: "
                              f"{[(tuple(state[k].shape), tuple(expected[k].shape)) for k in bad[:3]]}")
    full = dict(model.state_dict())
    full.update({k: v.to(full[k].dtype) for k, v in state.items()})
    model.load_state_dict(full, strict=True)


def load_backbone(name: str, path: str | Path, arch: str | None = None) -> Backbone:
    """A ``Backbone`` from a checkpoint file; ``arch`` inferred from the keys when None.

    Raises:
        CheckpointError: unreadable file, non-ResNet keys, or a key/shape mismatch with ``arch``.
    """
    from maskgen.common.weightfiles import NonFiniteWeightsError, check_finite

    path = Path(path)
    state = canonical_keys(read_state_dict(path))
    try:
        check_finite(state, f"checkpoint {path}")  # NaN weights would give NaN losses in every cell
    except NonFiniteWeightsError as err:
        raise CheckpointError(str(err)) from err
    inferred = infer_arch(state)
    if arch is not None and arch != inferred:
        raise CheckpointError(f"--arch {arch} given, but {path} holds a {inferred}")
    arch = arch or inferred
    model = getattr(torchvision.models, arch)(weights=None)
    load_backbone_state(model, state)  # fail now, not in the middle of a sweep
    sidecar = path.with_suffix(".json")
    provenance = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    fpn = read_fpn(path)
    return Backbone(name, arch, state, str(path), sha256_file(path), provenance, fpn=fpn,
                    fpn_source="new" if fpn is None else "pre-trained",
                    fpn_sha256=None if fpn is None else tensors_digest(fpn))


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of the state dict's deterministic safetensors bytes (names, shapes, dtypes, data)."""
    return hashlib.sha256(safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in state.items()})).hexdigest()


def read_fpn(path: Path) -> dict[str, torch.Tensor] | None:
    """The FPN sibling of a backbone file (``X.fpn.safetensors``), or None when absent.

    Raises:
        CheckpointError: the sibling exists but does not hold torchvision FPN keys.
    """
    from pretrain.export import fpn_path

    if path.suffix != ".safetensors" or path.name.endswith(".fpn.safetensors"):
        return None
    sibling = fpn_path(path)
    if not sibling.is_file():
        return None
    state = read_state_dict(sibling)
    expected = {f"{kind}.{i}.0.{p}" for kind in ("inner_blocks", "layer_blocks")
                for i in range(4) for p in ("weight", "bias")}
    if set(state) != expected:
        raise CheckpointError(f"{sibling} does not hold a 4-level torchvision FeaturePyramidNetwork "
                              f"(keys {sorted(state)[:4]}...)")
    return state


def random_backbone(arch: str = DEFAULT_ARCH, seed: int = 0, fpn_dim: int = 256) -> Backbone:
    """The reference: exactly the step-0 backbone + FPN of ``pretrain run --arch ARCH --seed SEED``.

    Built with ``pretrain.export.initial_state`` (same constructor, initialisation recipe and
    seed policy as pre-training; timm's ``zero_init_last`` included), so "method vs random"
    measures pre-training only. ``seed`` is the pre-training seed (default 0).
    """
    from pretrain.export import INIT_RECIPE, backbone_state, fpn_state, initial_state

    if arch not in ARCHS:
        raise CheckpointError(f"architecture {arch!r} is not one of {sorted(ARCHS)}")
    online = initial_state(arch, seed, fpn_dim)
    state, fpn = canonical_keys(backbone_state(online)), fpn_state(online)
    return Backbone("random", arch, state, None, tensors_digest(state),
                    {"init": INIT_RECIPE, "seed": seed, "source": "pretrain.export.initial_state",
                     "fpn_channels": fpn_dim},
                    fpn=fpn, fpn_source="step-0", fpn_sha256=tensors_digest(fpn))


def parse_checkpoint_option(value: str) -> tuple[str, Path]:
    """``NAME=FILE`` -> (name, path). Raises ValueError naming the bad value."""
    name, sep, file = value.partition("=")
    if not sep or not name or not file:
        raise ValueError(f"--checkpoint {value!r} must be NAME=FILE (e.g. anaus=runs/anaus.safetensors)")
    if name == "random":
        raise ValueError("--checkpoint random=... : 'random' is reserved for the random-init reference")
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise ValueError(f"method name {name!r} may use letters, digits and _ . + - only")
    return name, Path(file)
