"""The logging set-up of the three commands (``maskgen``, ``pretrain``, ``evaluate``)."""

from __future__ import annotations

import logging


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
