"""The synthetic ultrasound phantom: B-mode scenes with exact anatomy masks, written in the
native layouts of the nine public datasets (``maskgen phantom``; see docs/phantom.md)."""

from maskgen.phantom.generate import DATASETS, SCALES, PhantomScale, generate

__all__ = ["DATASETS", "SCALES", "PhantomScale", "generate"]
