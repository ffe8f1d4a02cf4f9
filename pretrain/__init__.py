"""``pretrain``: stage two of ANAUS, anatomy-anchored pre-training from the mask store.

Never imports segment_anything nor maskgen.lpsam: the store is the only link to stage one.
Of ``maskgen`` it uses ``maskgen.store`` (the reader), ``maskgen.common`` (devices, files,
provenance, logs, schedules) and ``maskgen.datasets`` (the probe's labelled frames).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
