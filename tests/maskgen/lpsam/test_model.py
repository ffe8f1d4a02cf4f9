"""LP-SAM's batched decoder against segment_anything's own per-image decoder."""

from __future__ import annotations

import torch

from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.testing import MICRO


def test_batched_decoder_equals_sam_predict_masks():
    torch.manual_seed(0)
    model = build_lpsam(MICRO, num_classes=3).eval()
    frames = torch.randint(0, 256, (2, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        x = model.preprocess(frames)
        logits, iou = model.predict_latent(x, multimask=True)
        emb = model.encode(x)
        latent = model.lpe(emb, x, model.dense_pe())
        dense = model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(3, -1, 8, 8)
        for i in range(2):  # SAM's way: one frame, its embedding repeated for the 3 prompts
            masks, ref_iou = model.mask_decoder(emb[i:i + 1], model.dense_pe(), latent[i].unsqueeze(1), dense, True)
            torch.testing.assert_close(logits[i], masks.reshape(-1, 32, 32), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(iou[i], ref_iou.reshape(-1), atol=1e-5, rtol=1e-5)


def test_preprocess_rejects_wrong_size():
    model = build_lpsam(MICRO, num_classes=1)
    try:
        model.preprocess(torch.zeros(1, 32, 32, dtype=torch.uint8))
    except ValueError as err:
        assert "(B, 64, 64)" in str(err)
    else:
        raise AssertionError("a 32x32 frame must be rejected")
