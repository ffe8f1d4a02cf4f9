"""LP-SAM assembled by injection from segment_anything's modules, plus our adapters and LPE.

The attribute names ``image_encoder``, ``prompt_encoder`` and ``mask_decoder`` are the official
SAM ones, so an official checkpoint's keys map one to one (after resampling, see
``checkpoint.py``); the new modules live under ``adapter.*`` (phase 1) and ``lpe.*`` (phase 2).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from maskgen.lpsam.adapters import DetailBranch, EncoderAdapter, adapted_encoder_forward
from maskgen.lpsam.config import LPSAMConfig
from maskgen.lpsam.lpe import LatentPromptEngine

# SAM's RGB normalisation; a grayscale frame is replicated to three channels.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
NEW_MODULES = ("adapter.", "lpe.")


class LPSAM(nn.Module):
    """SAM (encoder, prompt encoder, decoder) + phase-1 adapter + phase-2 latent prompt engine."""

    def __init__(self, config: LPSAMConfig, image_encoder: ImageEncoderViT, prompt_encoder: PromptEncoder,
                 mask_decoder: MaskDecoder, adapter: EncoderAdapter, lpe: LatentPromptEngine | None):
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.adapter = adapter
        self.lpe = lpe
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, S, S) uint8 grayscale -> (B, 3, S, S) float, SAM-normalised."""
        s = self.config.input_size
        if frames.ndim != 3 or frames.shape[-2:] != (s, s):
            raise ValueError(f"expected frames of shape (B, {s}, {s}), got {tuple(frames.shape)}")
        x = frames.to(self.pixel_mean.dtype).unsqueeze(1).expand(-1, 3, -1, -1)
        return (x - self.pixel_mean) / self.pixel_std

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised -> (B, prompt_dim, grid, grid) image embeddings."""
        return adapted_encoder_forward(self.image_encoder, self.adapter, x)

    def detail_features(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, 3, S, S) normalised -> (B, prompt_dim / 8, m, m) features of the detail branch,
        added to the decoder's upscaled embedding; None when the model has no detail branch."""
        detail = self.adapter.detail if self.adapter is not None else None
        return None if detail is None else detail(x)

    def dense_pe(self) -> torch.Tensor:
        """(1, prompt_dim, grid, grid) positional encoding of the embedding grid."""
        return self.prompt_encoder.get_dense_pe()

    def decode(self, embeddings: torch.Tensor, sparse: torch.Tensor, multimask: bool = False,
               detail: torch.Tensor | None = None,
               rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's mask decoder, batched over (embedding, prompt) pairs.

        segment_anything's ``MaskDecoder.predict_masks`` repeats one image's embedding for every
        prompt; here each of the N prompts comes with its own embedding row, so many frames and
        prompts go through in one call. The decoder's own modules are used unchanged.

        Args:
            embeddings: (N, C, h, w) image embeddings (row i belongs to prompt i), or (B, C, h, w)
                with ``rows``.
            sparse: (N, k, C) sparse prompt embeddings (points/boxes or latent tokens).
            multimask: return SAM's three multimask outputs instead of the single one.
            detail: (N or B, C / 8, m, m) detail-branch features (``detail_features``) added to
                the upscaled embedding, or None.
            rows: (N,) the frame (row of ``embeddings`` and ``detail``) of each prompt, or None.
        Returns:
            logits (N, M, m, m), m = ``config.mask_size`` (4h, or 4h x ``detail_scale``), and
            predicted IoU (N, M), M = 3 if multimask else 1.
        """
        if rows is not None:
            embeddings = embeddings[rows]
            detail = None if detail is None else detail[rows]
        dec = self.mask_decoder
        n = sparse.shape[0]
        out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(n, -1, -1).to(sparse.dtype), sparse], dim=1)
        dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        src = embeddings + dense
        b, c, h, w = src.shape
        hs, src = dec.transformer(src, self.dense_pe(), tokens)
        iou_out, mask_out = hs[:, 0, :], hs[:, 1:1 + dec.num_mask_tokens, :]
        upscaled = dec.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        if self.config.detail_scale > 1:
            upscaled = F.interpolate(upscaled, scale_factor=self.config.detail_scale, mode="bilinear",
                                     align_corners=False)
        if detail is not None:
            upscaled = upscaled + detail.to(upscaled.dtype)
        hyper = torch.stack([mlp(mask_out[:, i, :]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)], dim=1)
        b, c, h, w = upscaled.shape
        masks = (hyper @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        iou = dec.iou_prediction_head(iou_out)
        sl = slice(1, None) if multimask else slice(0, 1)
        return masks[:, sl], iou[:, sl]

    def upscale(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., m, m) low-resolution logits -> (..., S, S) bilinear."""
        s = self.config.input_size
        lead = logits.shape[:-2]
        out = F.interpolate(logits.reshape(-1, 1, *logits.shape[-2:]), size=(s, s), mode="bilinear",
                            align_corners=False)
        return out.view(*lead, s, s)

    def predict_latent(self, frames_x: torch.Tensor, embeddings: torch.Tensor | None = None,
                       multimask: bool = False, detail: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks from the latent prompts (no prompt from a person).

        Args:
            frames_x: (B, 3, S, S) normalised frames.
            embeddings: (B, C, h, w) precomputed image embeddings, or None to encode here.
            detail: the detail branch's features of ``frames_x`` (``detail_features``), or None
                to compute them here.
        Returns:
            low-resolution logits (B, T*M, m, m) and predicted IoU (B, T*M), class-major.
        """
        if self.lpe is None:
            raise RuntimeError("this LP-SAM has no latent prompt engine (phase 2 not built)")
        if embeddings is None:
            embeddings = self.encode(frames_x)
        b, t = embeddings.shape[0], self.lpe.num_classes
        latent = self.lpe(embeddings, frames_x, self.dense_pe())  # B, T, C
        rows = torch.arange(b, device=embeddings.device).repeat_interleave(t)
        if detail is None:
            detail = self.detail_features(frames_x)
        logits, iou = self.decode(embeddings, latent.reshape(b * t, 1, -1), multimask=multimask,
                                  detail=detail, rows=rows)
        return logits.reshape(b, -1, *logits.shape[-2:]), iou.reshape(b, -1)


def build_lpsam(config: LPSAMConfig, num_classes: int | None) -> LPSAM:
    """Assemble LP-SAM for ``config`` with ``num_classes`` latent tokens (None: no LPE)."""
    grid = config.grid
    encoder = ImageEncoderViT(
        depth=config.depth, embed_dim=config.embed_dim, img_size=config.input_size, mlp_ratio=4,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=config.num_heads,
        patch_size=config.patch_size, qkv_bias=True, use_rel_pos=True,
        global_attn_indexes=tuple(config.global_attn_indexes), window_size=config.window_size,
        out_chans=config.prompt_dim,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=config.prompt_dim, image_embedding_size=(grid, grid),
        input_image_size=(config.input_size, config.input_size), mask_in_chans=16,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=config.decoder_depth, embedding_dim=config.prompt_dim,
                                      mlp_dim=config.decoder_mlp_dim, num_heads=config.decoder_heads),
        transformer_dim=config.prompt_dim, iou_head_depth=3, iou_head_hidden_dim=256,
    )
    detail = None
    if config.detail_channels:
        detail = DetailBranch(config.detail_channels, config.prompt_dim // 8, config.input_size // config.mask_size,
                              levels=config.detail_levels)
    adapter = EncoderAdapter(config.embed_dim, config.depth, round(config.embed_dim * config.adapter_ratio),
                             config.conv_channels, config.patch_size, detail=detail)
    lpe = None
    if num_classes is not None:
        lpe = LatentPromptEngine(num_classes, config.prompt_dim, config.lpe_cnn_channels, config.patch_size,
                                 rounds=config.lpe_rounds, heads=config.lpe_heads, mlp_dim=config.lpe_mlp_dim)
    return LPSAM(config, encoder, prompt_encoder, decoder, adapter, lpe)


def count_params(module: nn.Module | None, trainable_only: bool = False) -> int:
    """Number of parameters (of those with requires_grad when ``trainable_only``)."""
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameter_counts(model: LPSAM) -> dict[str, int]:
    """Parameters per part: SAM's (frozen base), phase 1 (adapter), phase 2 (LPE), and the two
    parts of SAM that may train too: the mask decoder (phase 2 with ``train_decoder``; the
    paper's 11.1 M phase-2 count includes it) and its IoU head (within the decoder)."""
    sam = sum(count_params(m) for m in (model.image_encoder, model.prompt_encoder, model.mask_decoder))
    return {"sam": sam, "phase1_adapter": count_params(model.adapter), "phase2_lpe": count_params(model.lpe),
            "mask_decoder": count_params(model.mask_decoder),
            "iou_head": count_params(model.mask_decoder.iou_prediction_head)}
