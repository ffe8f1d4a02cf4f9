"""``maskgen run`` as a library: LP-SAM masks for every frame of a dataset, into a mask store.

- ``job``: ``MaskJob`` (what to run), the reader / predictor specs, ``run_mask_job``.
- ``dispatch``: the job's units in this process or on dask.distributed workers.
- ``worker``: one unit (a chunk-aligned range of frames) from frames to its store region.
- ``inference``: the predictor on a batch of frames, on this worker's device.
- ``postprocess``: probabilities -> up to K clean, distinct binary masks with scores.
- ``oracle``: ``maskgen oracle``, a phantom store whose masks are the phantom's ground truth.
- ``scoring``: ``maskgen score``, a store's masks against labelled masks, next to masks that
  know nothing of anatomy (grids and superpixels by ``pretrain.masks``' rules, the one import
  of stage two from stage one, made lazily).

Every write to the store goes through ``maskgen.store.writer``.
"""
