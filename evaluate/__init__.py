"""``evaluate``: the six-task downstream benchmark of ANAUS (fine-tuning, statistics, report).

The sweep fine-tunes every backbone (``random``, user checkpoints, ablations trained through
``pretrain run``) on six tasks with grouped five-fold cross-validation, chooses epochs on a
validation split carved from the training folds only, and writes a report with intervals and
paired tests. See ``evaluate.sweep`` for the orchestration and ``docs/evaluate.md`` for use.
Of ``maskgen`` it uses ``maskgen.datasets`` (the tasks' frames and folds) and ``maskgen.common``.
"""
