"""The anatomy mask store: the contract between stage one (``maskgen run``) and stage two.

- ``format``: the layout (names, schema, axes, manifest columns, attributes, mask packing).
- ``reader``: ``open_store`` -> ``MaskStore`` (what ``pretrain`` and ``evaluate`` read).
- ``writer``: the only code that writes a store (create, regions, parts, manifest, resume).
- ``verify``, ``inspection``, ``export``, ``scoring``: checking, summarising, exporting and
  scoring a store. ``testing``: small synthetic stores for tests and benchmarks.

Importing this package gives the reading API below; it imports neither torch nor SAM.
"""

from maskgen.store.reader import (
    ARRAY_NAMES,
    AXES,
    EVERY_CHUNK_WRITTEN,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    SCHEMA_VERSION,
    STATUS_FAILED,
    STATUS_OK,
    ZARR_NAME,
    MaskStore,
    StoreChunkError,
    StoreError,
    StoreNotFoundError,
    chunk_files,
    create_store,
    missing_chunks,
    open_store,
    pack_masks,
    read_manifest,
    read_rows,
    store_attributes,
    unpack_masks,
    unpack_masks_torch,
    write_manifest,
)

__all__ = ["ARRAY_NAMES", "AXES", "EVERY_CHUNK_WRITTEN", "MANIFEST_NAME", "MANIFEST_SCHEMA", "SCHEMA_VERSION",
           "STATUS_FAILED", "STATUS_OK", "ZARR_NAME", "MaskStore", "StoreChunkError", "StoreError",
           "StoreNotFoundError", "chunk_files", "create_store", "missing_chunks", "open_store", "pack_masks",
           "read_manifest", "read_rows", "store_attributes", "unpack_masks", "unpack_masks_torch", "write_manifest"]
