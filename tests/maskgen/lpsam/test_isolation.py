"""segment_anything stays inside maskgen/lpsam; nothing there loads weights unsafely."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SOURCES = [p for top in ("maskgen", "pretrain", "evaluate", "benchmarks", "scripts")
           for p in (REPO / top).rglob("*.py")]


def test_only_lpsam_imports_segment_anything():
    pattern = re.compile(r"^\s*(from|import)\s+segment_anything", re.M)
    offenders = [str(p.relative_to(REPO)) for p in SOURCES
                 if pattern.search(p.read_text(encoding="utf-8")) and "maskgen/lpsam" not in p.as_posix()]
    assert offenders == []


def test_no_strict_false_and_safe_torch_load():
    lpsam = list((REPO / "maskgen" / "lpsam").rglob("*.py"))
    assert lpsam
    for path in lpsam:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"strict\s*=\s*False", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_pretrain_does_not_import_segment_anything():
    if not (REPO / "pretrain" / "__init__.py").exists():
        return
    code = "import sys, pretrain, pretrain.cli; print('segment_anything' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_maskgen_cli_listing_does_not_import_segment_anything():
    code = "import sys, maskgen.cli.main; print('segment_anything' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
