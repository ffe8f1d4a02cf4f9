"""The ``maskgen`` command: click lives here and nowhere else in ``maskgen``.

``main`` is the group; every subcommand is a module of its own (``datasets``, ``phantom``,
``adapt``, ``run``, ``inspect`` (also ``verify``), ``export_masks``, ``score``) imported only
when it runs, so ``maskgen --help`` loads neither torch nor SAM. ``options`` holds the click
plumbing that ``pretrain`` and ``evaluate`` share with it (strict options, ``--config``,
``--version``, the output-folder lock as click errors). A subcommand converts its options
into the library's frozen configs at this one boundary and calls the library.
"""
