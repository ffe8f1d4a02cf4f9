"""Plumbing every stage shares; the only part of ``maskgen`` besides ``store`` and ``datasets``
that ``pretrain`` and ``evaluate`` may import.

- ``devices``: the one device policy (``--device`` names; rank / worker i -> its device).
- ``files``: atomic writes, file hashes, byte-stable safetensors.
- ``provenance``: what made an output (``run.json``: config, seed, code revision, inputs).
- ``logs``: the logging set-up of the three commands.
- ``schedules``: the one warm-up + cosine learning-rate schedule.
- ``locks``: one writer per output folder. ``weightfiles``: weights read without pickle,
  finite values only. ``contact_sheet``: frames with masks drawn as a picture.

Nothing here imports click, segment_anything, or another ``maskgen`` package.
"""
