"""The inference API of stage one: ``load_predictor(adapt_dir, device)`` -> ``MaskPredictor``.

A predictor maps uint8 frames (B, S, S) to T candidate masks per frame with a predicted quality,
without any prompt from a person: encoder once per frame, latent prompt engine, decoder.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from maskgen.common.devices import autocast_dtype, resolve_device
from maskgen.common.files import sha256_file
from maskgen.lpsam.artifacts import WEIGHTS, load_adapt_dir
from maskgen.lpsam.model import LPSAM
from maskgen.lpsam.proposals import ProposalConfig, box_grid, box_proposals, grid_proposals


class MaskPredictor:
    """Callable LP-SAM for inference.

    Attributes:
        input_size: S, the frame side the predictor takes.
        sha256: sha256 of the adaptation's lpsam.safetensors.
        config: the adaptation's lpsam.json (model config, classes, base checkpoint).
        candidate_classes: anatomy class name of each of the T candidates (class-major; with
            ``multimask`` each class gives 3 candidates, named ``class#0..2``), then, with
            point-grid proposals, ``grid#0..P-1``, then, with box-grid proposals, ``box#0..Q-1``
            (both class-agnostic, see ``maskgen.lpsam.proposals``).
        device: where the model lives.
        proposals: which candidates are made (latent class tokens, point grid, box grid).
        candidate_priority: (T,) int per candidate for the store's post-processing (0: latent
            class token, 1: proposal; kept in that order, ``ProposalConfig.merge``), or None
            (one ranking by score).
    """

    def __init__(self, model: LPSAM, meta: dict, sha256: str, device: torch.device, multimask: bool = False,
                 proposals: ProposalConfig | None = None):
        self.model = model.to(device).eval()
        self.config = meta
        self.sha256 = sha256
        self.device = device
        self.multimask = multimask
        self.proposals = proposals or ProposalConfig()
        self.input_size = int(model.config.input_size)
        names = [c["name"] for c in meta["classes"]]
        latent = [f"{n}#{j}" for n in names for j in range(3)] if multimask else names
        cfg = self.proposals
        grid = [f"grid#{i}" for i in range(cfg.points_per_side ** 2)] if cfg.grid else []
        boxes = ([f"box#{i}" for i in range(len(box_grid(cfg.box_sides, cfg.box_overlap, self.input_size)))]
                 if cfg.boxes else [])
        self.candidate_classes = (latent if cfg.latent else []) + grid + boxes
        first = cfg.mixed and cfg.merge == "latent-first"
        self.candidate_priority = (np.asarray([0] * len(latent) + [1] * (len(grid) + len(boxes)), dtype=np.int64)
                                   if first else None)

    @property
    def num_candidates(self) -> int:
        return len(self.candidate_classes)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate masks of a batch of frames.

        Args:
            images: (B, S, S) uint8 grayscale frames on ``self.device``.
        Returns:
            probs: (B, T, S, S) float32 foreground probabilities in [0, 1].
            scores: (B, T) float32 predicted mask quality (IoU) clamped to [0, 1]; NaN for
                point- or box-grid proposals that fail the IoU / stability filter.
        """
        s = self.input_size
        if images.dtype != torch.uint8 or images.ndim != 3 or images.shape[-2:] != (s, s):
            raise ValueError(f"expected uint8 frames (B, {s}, {s}), got {images.dtype} {tuple(images.shape)}")
        dtype = autocast_dtype(self.device)
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            x = self.model.preprocess(images.to(self.device))
            embeddings, detail = self.model.encode(x), self.model.detail_features(x)
            parts = []
            if self.proposals.latent:
                logits, iou = self.model.predict_latent(x, embeddings, multimask=self.multimask, detail=detail)
                parts.append((logits.float(), iou.float().clamp(0, 1)))
            if self.proposals.grid:
                logits, scores = grid_proposals(self.model, embeddings, self.proposals, detail)
                parts.append((logits.float(), scores))
            if self.proposals.boxes:
                logits, scores = box_proposals(self.model, embeddings, self.proposals, detail)
                parts.append((logits.float(), scores))
            logits = torch.cat([p[0] for p in parts], dim=1)
            probs = torch.sigmoid(self.model.upscale(logits))
        return probs.float(), torch.cat([p[1] for p in parts], dim=1)


def load_predictor(adapt_dir: str | os.PathLike, device: torch.device | str = "auto",
                   sam_checkpoint: str | os.PathLike | None = None, multimask: bool = False,
                   proposals: ProposalConfig | None = None) -> MaskPredictor:
    """Load the LP-SAM adapted by ``maskgen adapt --out adapt_dir`` onto ``device``.

    Args:
        device: a torch.device or a ``--device`` string (``auto``, ``cpu``, ``cuda:1``).
        sam_checkpoint: where the official SAM base now lies (ViT configs), if it moved.
        multimask: 3 candidates per anatomy class (SAM's multimask outputs) instead of 1.
        proposals: latent class tokens (default), point-grid and/or box-grid proposals.
    """
    if isinstance(device, str):
        device = resolve_device(device)
    model, meta = load_adapt_dir(adapt_dir, sam_checkpoint)
    return MaskPredictor(model, meta, sha256_file(Path(adapt_dir) / WEIGHTS), device, multimask, proposals)
