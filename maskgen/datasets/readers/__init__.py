"""One reader per public dataset, each turning a root in its native layout into frames.

See ``maskgen.datasets.registry`` (``open_dataset``) and /work/shared/design/DATASETS.md.
"""

from maskgen.datasets.readers.base import DatasetReader

__all__ = ["DatasetReader"]
