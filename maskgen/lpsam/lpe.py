"""Phase 2: the latent prompt engine (LPE), which replaces prompts from a person.

1. A light CNN encodes local features of the frame at the image-embedding grid.
2. Cross-Perception Attention (CPA) fuses the global ViT tokens with the local CNN tokens:
   each stream attends to the other, and a linear layer mixes the two results.
3. N rounds of bidirectional cross-attention between learnable latent prompt tokens (one per
   anatomy class) and the fused image tokens: segment_anything's ``TwoWayTransformer`` with
   ``depth=N``, injected here.
4. The final latent tokens replace the prompt encoder's sparse embeddings in SAM's decoder.
"""

from __future__ import annotations

import math

import torch
from segment_anything.modeling import TwoWayTransformer
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.transformer import Attention
from torch import nn


class LocalCNN(nn.Module):
    """Frame (B, 3, S, S) -> local tokens (B, dim, S/stride, S/stride); stride a power of 2."""

    def __init__(self, channels: tuple[int, ...], dim: int, stride: int):
        super().__init__()
        stages = int(math.log2(stride))
        if 2**stages != stride:
            raise ValueError(f"LPE stride {stride} must be a power of 2")
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(stages):
            c_out = channels[min(i, len(channels) - 1)]
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), LayerNorm2d(c_out), nn.GELU()]
            if i >= 2:  # a second conv only at 1/8 resolution and below: full-res convs are costly
                layers += [nn.Conv2d(c_out, c_out, 3, padding=1), LayerNorm2d(c_out), nn.GELU()]
            c_in = c_out
        layers += [nn.Conv2d(c_in, dim, 1), LayerNorm2d(dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CrossPerceptionAttention(nn.Module):
    """Fuse global (ViT) and local (CNN) tokens, both (B, N, dim) with positional codes (1, N, dim)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.global_to_local = Attention(dim, heads)
        self.local_to_global = Attention(dim, heads)
        self.norm_global = nn.LayerNorm(dim)
        self.norm_local = nn.LayerNorm(dim)
        self.mix = nn.Sequential(nn.Linear(2 * dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, glob: torch.Tensor, local: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        g = self.norm_global(glob + self.global_to_local(q=glob + pe, k=local + pe, v=local))
        loc = self.norm_local(local + self.local_to_global(q=local + pe, k=glob + pe, v=glob))
        return self.norm_out(glob + self.mix(torch.cat([g, loc], dim=-1)))


class LatentPromptEngine(nn.Module):
    """Image embedding + frame -> one latent prompt token per anatomy class.

    Args:
        num_classes: T, latent tokens (one per anatomy class of the adaptation data).
        dim: prompt width of SAM's decoder (256 for the ViT configs).
        cnn_channels: widths of the light CNN's stages.
        stride: image-embedding stride (frame side / embedding side).
        rounds: N, bidirectional cross-attention rounds.
    """

    def __init__(self, num_classes: int, dim: int, cnn_channels: tuple[int, ...], stride: int,
                 rounds: int = 4, heads: int = 8, mlp_dim: int = 2048):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"the LPE needs at least one anatomy class, got {num_classes}")
        self.local_cnn = LocalCNN(cnn_channels, dim, stride)
        self.cpa = CrossPerceptionAttention(dim, heads)
        self.latent_tokens = nn.Embedding(num_classes, dim)
        self.rounds = TwoWayTransformer(depth=rounds, embedding_dim=dim, num_heads=heads, mlp_dim=mlp_dim)
        self.out_proj = nn.Linear(dim, dim)

    @property
    def num_classes(self) -> int:
        return self.latent_tokens.num_embeddings

    def forward(self, image_embeddings: torch.Tensor, frames: torch.Tensor,
                image_pe: torch.Tensor) -> torch.Tensor:
        """Latent prompts.

        Args:
            image_embeddings: (B, dim, h, w) from the (adapted) image encoder.
            frames: (B, 3, S, S) normalised frames.
            image_pe: (1, dim, h, w) dense positional encoding of the prompt encoder.
        Returns:
            (B, T, dim) latent prompt tokens, usable as sparse prompt embeddings.
        """
        b, c, h, w = image_embeddings.shape
        local = self.local_cnn(frames)
        if local.shape[-2:] != (h, w):
            raise ValueError(f"LPE local grid {tuple(local.shape[-2:])} != embedding grid {(h, w)}")
        pe = image_pe.flatten(2).transpose(1, 2)
        fused = self.cpa(image_embeddings.flatten(2).transpose(1, 2), local.flatten(2).transpose(1, 2), pe)
        fused = fused.transpose(1, 2).reshape(b, c, h, w)
        tokens = self.latent_tokens.weight.unsqueeze(0).expand(b, -1, -1)
        tokens, _ = self.rounds(fused, image_pe, tokens)
        return self.out_proj(tokens)
