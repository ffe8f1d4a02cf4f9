"""Stage one of ANAUS: dataset registry and readers, the ultrasound phantom, LP-SAM and the mask store.

One folder per concern (docs/architecture.md has the picture and the import rules):

- ``cli``: the ``maskgen`` command (click lives here only).
- ``common``: devices, files, provenance, logs, schedules: what every stage may import.
- ``datasets``: frames, manifests, the registry, one reader per dataset, letterbox, folds.
- ``store``: the mask store, the contract with stage two (format, reader, the one writer).
- ``generate``: ``maskgen run`` as a library (job, dispatch, worker, post-processing).
- ``lpsam``: the adapted SAM (the only package that imports segment_anything).
- ``phantom``: synthetic ultrasound data in every native layout.

Importing ``maskgen`` is light: nothing here imports torch or segment_anything, so stage two
(``pretrain``) reads the store through ``maskgen.store`` without loading SAM.
"""

__version__ = "0.1.0"
