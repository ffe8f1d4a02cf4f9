"""Reading back ``metrics.jsonl`` after a crash: a torn last line is dropped, not fatal.

A run killed mid-write (or a full disk) can leave the last line of a JSON-lines file
incomplete. That line carries nothing a resumed run needs (it rewrites every step after its
checkpoint), so it is dropped with a warning; a bad line anywhere else means the file was
edited or damaged, and the error names the file and the line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def read_records(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file, a torn last line dropped.

    Raises:
        ValueError: a line other than the last is not a JSON object (names file and line).
    """
    path = Path(path)
    lines = path.read_text(errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            if number == len(lines):
                log.warning("%s: dropping its torn last line %d (%d characters): %s", path, number, len(line), err)
                break
            raise ValueError(f"{path}, line {number}: not a JSON record ({err}); fix or remove the line") from err
        records.append(record)
    return records


def keep_until(path: str | Path, step: int) -> None:
    """Rewrite ``path`` with only its records up to ``step`` (a resumed run's checkpoint)."""
    path = Path(path)
    kept = [r for r in read_records(path) if r.get("step", 0) <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
