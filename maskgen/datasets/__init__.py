"""Datasets: what stage one, LP-SAM adaptation and the benchmark read frames from.

- ``frames``: ``FrameRef`` (cheap listing) and ``Frame`` (decoded pixels), the dataset errors.
- ``spec``: a dataset's manifest (``manifests/*.toml``) parsed into a ``DatasetSpec``.
- ``registry``: dataset name -> spec and reader; ``open_dataset(name, root)``.
- ``readers/``: one reader per public dataset, each for its native layouts.
- ``letterbox``: frames and label maps to a square working size, keeping the aspect ratio.
- ``framecheck``: the per-frame failure policy. ``folds``: grouped (stratified) k-fold splits.
- ``preview``: frames with their ground-truth masks as a contact sheet.

Imports ``maskgen.common`` only (no torch, no click).
"""
