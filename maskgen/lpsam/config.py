"""LP-SAM configurations: frozen dataclasses, one per model size, in a plain dict registry.

Every ViT config takes 256x256 frames with 8x8 patches, so the token grid is 32x32 (the
official SAM uses 1024x1024 frames and 16x16 patches: a 64x64 grid). ``tiny`` is a small
model trained from random initialisation on CPU (the demo); it uses 16x16 patches (a 16x16
grid) to stay within a CPU budget, and a detail branch (frame features at 2 px, mask logits
128x128) because a 16x16 patch is wider than the thinnest anatomy it must delineate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class LPSAMConfig:
    """Hyperparameters of one LP-SAM model (image encoder, adapters, decoder, LPE).

    Attributes:
        name: registry key.
        input_size: side S of the square uint8 frames the model takes.
        patch_size: ViT patch side (token grid = S // patch_size).
        embed_dim, depth, num_heads, window_size, global_attn_indexes: the ViT image encoder.
        prompt_dim: width of the prompt encoder, mask decoder and LPE (SAM: 256).
        decoder_depth, decoder_mlp_dim, decoder_heads: SAM's TwoWayTransformer in the decoder.
        adapter_ratio: bottleneck width of each adapter as a fraction of ``embed_dim``.
        conv_channels: channels of the parallel convolutional branch (phase 1).
        lpe_cnn_channels: channels of the LPE's light CNN (local features).
        lpe_rounds: N, rounds of bidirectional cross-attention in the LPE (paper: 4).
        lpe_mlp_dim, lpe_heads: width/heads of the LPE's two-way blocks.
        detail_channels: width of the detail branch (``adapters.DetailBranch``: frame features
            at the mask resolution added to the decoder's upscaled embedding); 0: none.
        detail_scale: with a detail branch, the decoder's upscaled embedding is enlarged
            (bilinear) by this factor before the branch's features are added, so the mask logits
            are ``4 * grid * detail_scale`` a side (1: SAM's 4 x grid).
        detail_levels: resolution levels of the detail branch (1: one 3x3 stack at the mask
            resolution; L > 1: a feature pyramid down to 2^(L-1) times coarser, brought back
            top-down).
        sam_variant: which official SAM checkpoint layout this config loads (None for tiny).
    """

    name: str
    input_size: int = 256
    patch_size: int = 8
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    adapter_ratio: float = 1 / 3
    conv_channels: int = 256
    lpe_cnn_channels: tuple[int, ...] = (128, 256, 448)
    lpe_rounds: int = 4
    lpe_mlp_dim: int = 2048
    lpe_heads: int = 8
    sam_variant: str | None = "vit_b"
    detail_channels: int = 0
    detail_scale: int = 1
    detail_levels: int = 1

    def __post_init__(self):
        if self.input_size % self.patch_size:
            raise ValueError(f"input_size {self.input_size} is not a multiple of patch_size {self.patch_size}")
        if not 0 < self.adapter_ratio <= 4:
            raise ValueError(f"adapter_ratio {self.adapter_ratio} must be in (0, 4]")
        if self.lpe_rounds < 1:
            raise ValueError(f"lpe_rounds {self.lpe_rounds} must be >= 1")
        if self.detail_channels < 0:
            raise ValueError(f"detail_channels {self.detail_channels} must be >= 0")
        if self.detail_scale not in (1, 2, 4) or (self.detail_scale > 1 and not self.detail_channels):
            raise ValueError(f"detail_scale {self.detail_scale} must be 1, 2 or 4, and above 1 only with "
                             "a detail branch (detail_channels > 0)")
        if self.detail_levels < 1 or (self.detail_levels > 1 and not self.detail_channels):
            raise ValueError(f"detail_levels {self.detail_levels} must be >= 1, and above 1 only with a "
                             "detail branch (detail_channels > 0)")
        if self.input_size % self.mask_size:
            raise ValueError(f"mask side {self.mask_size} does not divide input_size {self.input_size}")
        bad = [i for i in self.global_attn_indexes if not 0 <= i < self.depth]
        if bad:
            raise ValueError(f"global_attn_indexes {bad} outside 0..{self.depth - 1}")

    @property
    def grid(self) -> int:
        """Side of the image-token grid (and of the image embedding)."""
        return self.input_size // self.patch_size

    @property
    def mask_size(self) -> int:
        """Side of the decoder's low-resolution mask logits (4x the grid, x ``detail_scale``)."""
        return 4 * self.grid * self.detail_scale

    def to_dict(self) -> dict:
        d = asdict(self)
        d["global_attn_indexes"] = list(self.global_attn_indexes)
        d["lpe_cnn_channels"] = list(self.lpe_cnn_channels)
        for key in ("detail_channels", "detail_scale", "detail_levels"):  # the dict (and the adaptation fingerprints)
            if d[key] == LPSAMConfig.__dataclass_fields__[key].default:  # it had before the branch
                d.pop(key)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LPSAMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown LP-SAM config keys {sorted(unknown)}")
        d = dict(d)
        d["global_attn_indexes"] = tuple(d.get("global_attn_indexes", ()))
        if "lpe_cnn_channels" in d:
            d["lpe_cnn_channels"] = tuple(d["lpe_cnn_channels"])
        return cls(**d)


CONFIGS: dict[str, LPSAMConfig] = {
    "vit_b": LPSAMConfig("vit_b"),
    "vit_l": LPSAMConfig(
        "vit_l", embed_dim=1024, depth=24, num_heads=16,
        global_attn_indexes=(5, 11, 17, 23), sam_variant="vit_l",
    ),
    "vit_h": LPSAMConfig(
        "vit_h", embed_dim=1280, depth=32, num_heads=16,
        global_attn_indexes=(7, 15, 23, 31), sam_variant="vit_h",
    ),
    "tiny": LPSAMConfig(
        "tiny", patch_size=16, embed_dim=64, depth=4, num_heads=4, window_size=8,
        global_attn_indexes=(1, 3), prompt_dim=64, decoder_depth=2, decoder_mlp_dim=256,
        decoder_heads=4, conv_channels=32, adapter_ratio=0.25, lpe_cnn_channels=(8, 16, 32, 64),
        lpe_mlp_dim=256, lpe_heads=4, sam_variant=None, detail_channels=16, detail_scale=2,
    ),
}

@dataclass(frozen=True)
class PhaseDefaults:
    """Adaptation budget of a model size when ``maskgen adapt`` is not given one: steps and
    learning rate of phase 1 (adapters) and phase 2 (latent prompt engine)."""

    steps1: int
    steps2: int
    lr1: float
    lr2: float


# tiny trains from scratch (every weight), so it takes a higher rate than the SAM-initialised ViTs
PHASE_DEFAULTS = {"tiny": PhaseDefaults(3200, 2400, 2e-3, 2e-3), "vit": PhaseDefaults(4000, 4000, 1e-4, 1e-4)}


def phase_defaults(name: str) -> PhaseDefaults:
    """The default adaptation budget of model ``name`` (``tiny``, or any ViT)."""
    return PHASE_DEFAULTS["tiny" if get_config(name).sam_variant is None else "vit"]


# The official SAM image encoder geometry that checkpoints of each variant were trained at.
OFFICIAL_INPUT_SIZE = 1024
OFFICIAL_PATCH_SIZE = 16


def _refuse_official_width(config: LPSAMConfig, part: str, width: int) -> None:
    """A width option is for a model without SAM weights: an official checkpoint fixes the width
    of ``part`` ("a decoder", "an encoder") at ``width``."""
    if config.sam_variant is not None:
        noun = part.split()[-1]
        raise ValueError(f"{config.name} loads SAM's {config.sam_variant} weights, whose {noun} is "
                         f"{width} wide; {part} width is for tiny")


def with_decoder_dim(config: LPSAMConfig, dim: int) -> LPSAMConfig:
    """``config`` with a mask decoder and latent prompt engine ``dim`` wide (SAM's transformer_dim,
    the image encoder's neck output), their MLPs 4 x ``dim`` as in ``tiny``. Only for a model
    without SAM weights: an official checkpoint fixes the width."""
    _refuse_official_width(config, "a decoder", config.prompt_dim)
    if dim % 8 or dim % config.decoder_heads or dim % config.lpe_heads:
        raise ValueError(f"decoder width {dim} must be a multiple of 8 and of the heads "
                         f"({config.decoder_heads}, {config.lpe_heads})")
    if dim == config.prompt_dim:
        return config
    return replace(config, prompt_dim=dim, decoder_mlp_dim=4 * dim, lpe_mlp_dim=4 * dim)


def with_encoder_dim(config: LPSAMConfig, dim: int) -> LPSAMConfig:
    """``config`` with an image encoder ``dim`` wide (the ViT's ``embed_dim``; its heads, depth and
    MLP ratio unchanged, so each head ``dim / num_heads`` wide, and the adapters ``adapter_ratio`` of
    it). Only for a model without SAM weights: an official checkpoint fixes the width."""
    _refuse_official_width(config, "an encoder", config.embed_dim)
    if dim % config.num_heads or dim % 8:
        raise ValueError(f"encoder width {dim} must be a multiple of 8 and of the heads ({config.num_heads})")
    return replace(config, embed_dim=dim)


def get_config(name: str) -> LPSAMConfig:
    """The registered config ``name`` (``tiny``, ``vit_b``, ``vit_l``, ``vit_h``)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown LP-SAM model {name!r}; choose one of {sorted(CONFIGS)}")
    return CONFIGS[name]
