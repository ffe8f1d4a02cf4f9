"""The encoder architectures: which exist, which is the default, which one a run used.

Kept apart from ``pretrain.model`` (torch, timm) so that the command line can show the
default without importing either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
DEFAULT_ARCH = "resnet18"  # the paper's main encoder; every --arch default is this


def run_arch(config: Mapping[str, Any]) -> str:
    """The architecture a run's resolved configuration names (``model.arch``; "" if none)."""
    return str(config.get("model", {}).get("arch", ""))
