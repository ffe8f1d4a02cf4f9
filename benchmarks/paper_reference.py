"""The paper's reference pre-training step (github.com/zhcz328/ANAUS), loaded at run time.

Nothing of the reference is copied into this repository: its source files are read from a
local copy (a checkout, or a bare git mirror read with ``git show HEAD:<path>``) given by
``--reference PATH`` or the ``ANAUS_REFERENCE`` environment variable, patched in memory so that
they run in one CPU process, and executed as private modules (``anaus_ref.*``).

The in-memory patches (none changes what a step computes):

* every ``'cuda'`` device literal -> ``'cpu'``;
* imports renamed into the private ``anaus_ref`` namespace; the unused ``skimage`` / ``pickle``
  imports of ``utils/mask_utils.py`` dropped;
* ``utils/distributed_utils.py`` (it needs classy_vision) replaced by a one-rank
  ``gather_from_all`` (the identity: an all-gather over one rank), and the loss's
  "is distributed initialised" test taken as true, as in the paper's (multi-GPU) runs;
* ``pretrained=pretrained`` -> ``weights=None`` (torchvision removed the old argument; the
  config asks for no pre-trained weights anyway); ``add_(scalar, tensor)`` -> ``add_(tensor,
  alpha=scalar)`` (the removed overload of the EMA update).

One step is what the paper's trainer does per batch (``trainer/anaus_trainer.py``): the model's
forward (4 pooling scales; per scale the online and target networks on both views and on the
damaged / clean common region, the EMA update, the per-image appearance transform), the
InfoNCE + MSE losses, backward and its LARS step. Its data loader (views, masks) is not timed;
our step's timing includes making the views and masks (``prepare_inputs``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

FILES = {  # private module name -> path in the reference repository
    "anaus_ref.utils.mask_utils": "utils/mask_utils.py",
    "anaus_ref.model.basic_modules": "model/basic_modules.py",
    "anaus_ref.model.anaus_model": "model/anaus_model.py",
    "anaus_ref.losses.loss": "losses/loss.py",
    "anaus_ref.optimizer.LARSSGD": "optimizer/LARSSGD.py",
    "anaus_ref.utils.params_util": "utils/params_util.py",
}

PATCHES = [  # (old, new, where) applied to the reference's source text in memory
    ("'cuda'", "'cpu'", "*"),
    ('"cuda"', '"cpu"', "*"),
    ("import skimage\n", "\n", "utils/mask_utils.py"),
    ("import pickle\n", "\n", "utils/mask_utils.py"),
    ("from utils.mask_utils import", "from anaus_ref.utils.mask_utils import", "*"),
    ("from .basic_modules import", "from anaus_ref.model.basic_modules import", "model/anaus_model.py"),
    ("from utils.distributed_utils import", "from anaus_ref.utils.distributed_utils import", "losses/loss.py"),
    ("torch.distributed.is_available() and torch.distributed.is_initialized()", "True", "losses/loss.py"),
    ("(pretrained=pretrained)", "(weights=None)", "model/basic_modules.py"),
    (".add_(1. - mm, param_q.data)", ".add_(param_q.data, alpha=1. - mm)", "model/anaus_model.py"),
]


def reference_root(cli_value: str | None = None) -> Path | None:
    """The reference copy from ``--reference`` or ``ANAUS_REFERENCE``; None when neither is set."""
    value = cli_value or os.environ.get("ANAUS_REFERENCE")
    return Path(value) if value else None


def read_source(root: Path, rel: str) -> str:
    """A file of the reference: ``root/rel`` in a checkout, else ``HEAD:rel`` of a (bare) git repo."""
    path = root / rel
    if path.is_file():
        return path.read_text()
    git_dir = root / ".git" if (root / ".git").exists() else root
    done = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"HEAD:{rel}"], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise FileNotFoundError(f"{rel} is neither a file under {root} nor in its git HEAD: {done.stderr.strip()}")
    return done.stdout


def patched(rel: str, text: str) -> str:
    for old, new, where in PATCHES:
        if where in ("*", rel):
            text = text.replace(old, new)
    if "cuda" in text.replace("torch.cuda", ""):
        raise ValueError(f"{rel}: a device literal survived the patches")
    return text


def _one_rank_distributed() -> types.ModuleType:
    mod = types.ModuleType("anaus_ref.utils.distributed_utils")
    mod.gather_from_all = lambda tensor: tensor  # all-gather over a single rank
    return mod


def load_reference(root: Path) -> dict[str, types.ModuleType]:
    """Execute the reference's model, loss and optimiser modules; returns them by private name."""
    for pkg in ("anaus_ref", "anaus_ref.utils", "anaus_ref.model", "anaus_ref.losses", "anaus_ref.optimizer"):
        mod = types.ModuleType(pkg)
        mod.__path__ = []
        sys.modules[pkg] = mod
    sys.modules["anaus_ref.utils.distributed_utils"] = _one_rank_distributed()
    loaded = {}
    for name, rel in FILES.items():
        mod = types.ModuleType(name)
        mod.__file__ = f"{root}/{rel} (patched in memory)"
        sys.modules[name] = mod
        exec(compile(patched(rel, read_source(root, rel)), mod.__file__, "exec"), mod.__dict__)
        loaded[name] = mod
    return loaded


def reference_config(batch: int, rank: int = 0) -> dict:
    """The values of the reference's ``configs/example.yaml`` that its model and loss read, at
    our benchmark batch (ResNet-18, FPN 256, projector 256-1024-256, predictor 256-4096-256,
    16 mask draws, temperature 0.1, LARS momentum 0.9 / weight decay 1e-6)."""
    return {
        "model": {"backbone": {"type": "resnet18", "pretrained": False},
                  "projection": {"input_dim": 256, "hidden_dim": 1024, "output_dim": 256},
                  "predictor": {"input_dim": 256, "hidden_dim": 4096, "output_dim": 256}},
        "data": {"train_batch_size": batch},
        "loss": {"temperature": 0.1, "mask_rois": 16, "pool_size": 7},
        "optimizer": {"momentum": 0.9, "weight_decay": 1.0e-6, "base_lr": 0.3},
        "rank": rank,
    }


class ReferenceStep:
    """The reference model + losses + LARS at batch ``batch``, on the CPU."""

    def __init__(self, root: Path, batch: int, seed: int = 0):
        import torch

        mods = load_reference(root)
        cfg = reference_config(batch)
        torch.manual_seed(seed)
        self.model = mods["anaus_ref.model.anaus_model"].ANAUSModel(cfg)
        self.nce = mods["anaus_ref.losses.loss"].InfoNCECriterion(cfg)
        self.mse = torch.nn.MSELoss()
        params = mods["anaus_ref.utils.params_util"].collect_params(
            [self.model.online_network, self.model.predictor], exclude_bias_and_bn=True)
        lr = cfg["optimizer"]["base_lr"] * batch / 256
        self.optimizer = mods["anaus_ref.optimizer.LARSSGD"].LARS(
            params, lr=lr, momentum=cfg["optimizer"]["momentum"], weight_decay=cfg["optimizer"]["weight_decay"])
        self.model.train()

    @staticmethod
    def inputs(frames, masks, resolution: int):
        """Our batch -> the reference's inputs: views (n, 3, R, R) (the frame resized, twice),
        the common region (n, 3, R, R), masks (n, 2, 1, R, R) float id maps (0 = background)."""
        import torch
        import torch.nn.functional as F

        img = F.interpolate(frames[:, None].float() / 255, size=(resolution, resolution), mode="bilinear",
                            align_corners=False).expand(-1, 3, -1, -1).contiguous()
        slots = torch.arange(1, masks.shape[1] + 1, dtype=torch.float32).view(1, -1, 1, 1)
        ids = (masks.float() * slots).amax(1, keepdim=True)                   # (n, 1, S, S)
        ids = F.interpolate(ids, size=(resolution, resolution), mode="nearest")
        return img, img.clone(), img.clone(), torch.stack([ids, ids], 1)

    def step(self, view1, view2, com, masks, mm: float = 0.99) -> float:
        result, result_com = self.model(view1, view2, com.clone(), mm, masks)
        loss = 0
        for q, target_z, pinds, tinds in result:
            loss = loss + self.nce(target_z, q, tinds, pinds)
        for q_com, target_z_com in result_com:
            loss = loss + self.mse(target_z_com, q_com)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
