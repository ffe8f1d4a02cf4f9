"""Atomic writes: whole files with the mode a plain write would give, temporaries removed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from maskgen.common.files import atomic_path, atomic_write_text, remove_stale_temps


def test_atomic_write_takes_the_umask_of_its_process(tmp_path):
    """The file gets 0666 minus the umask, as open() would; the umask is never changed
    (it used to be flipped to 0 and back at import, a race with any other thread)."""
    code = ("import os, stat, sys; os.umask(0o027); from maskgen.common.files import atomic_write_text;"
            "atomic_write_text(sys.argv[1], 'x'); assert os.umask(0o027) == 0o027;"
            "print(oct(stat.S_IMODE(os.stat(sys.argv[1]).st_mode)))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.txt")], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "0o640"


def test_failed_block_leaves_nothing_and_stale_temps_are_recognised(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    atomic_write_text(target, "whole")
    stale = tmp_path / ".out.json.Ab3_x9Zq.tmp"  # as a writer killed inside the block leaves it
    stale.write_text("half")
    assert target.read_text() == "whole"
    assert remove_stale_temps(tmp_path) == [stale]
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
