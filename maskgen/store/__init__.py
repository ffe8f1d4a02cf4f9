"""The anatomy mask store: the contract between stage one (``maskgen run``) and stage two.

- ``format``: the layout (names, schema, axes, manifest columns, attributes, mask packing).
- ``reader``: ``open_store`` -> ``MaskStore`` (what ``pretrain`` and ``evaluate`` read).
- ``writer``: the only code that writes a store (create, regions, parts, manifest, resume).
- ``verify``, ``inspection``, ``export``: checking, summarising and exporting a store.
- ``testing``: small synthetic stores for tests and benchmarks, written through ``writer``.

``format``, ``reader`` and ``writer`` import only ``maskgen.common``; the tools beside them
also ``maskgen.datasets.letterbox`` (a store's frames are letter-boxed).

Importing this package gives the format and the reading API below (writing is
``maskgen.store.writer``'s, imported by name where it happens); no torch, no SAM.
"""

from maskgen.store.format import (
    ARRAY_NAMES,
    AXES,
    EVERY_CHUNK_WRITTEN,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STATUS_FAILED,
    STATUS_OK,
    ZARR_NAME,
    StoreChunkError,
    StoreError,
    StoreNotFoundError,
    manifest_row,
    pack_masks,
    store_attributes,
    unpack_masks,
    unpack_masks_torch,
)
from maskgen.store.reader import (
    MaskStore,
    chunk_files,
    missing_chunks,
    open_store,
    read_manifest,
    read_rows,
)

__all__ = ["ARRAY_NAMES", "AXES", "EVERY_CHUNK_WRITTEN", "MANIFEST_NAME", "MANIFEST_SCHEMA", "SCHEMA_NAME",
           "SCHEMA_VERSION", "STATUS_FAILED", "STATUS_OK", "ZARR_NAME", "MaskStore", "StoreChunkError", "StoreError",
           "StoreNotFoundError", "chunk_files", "manifest_row", "missing_chunks", "open_store", "pack_masks",
           "read_manifest", "read_rows", "store_attributes", "unpack_masks", "unpack_masks_torch"]
