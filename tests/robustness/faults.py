"""Helpers of the fault-injection tests (imported by name; tests/robustness is on sys.path)."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# `pretrain run` options of a tiny CPU run: 3 epochs of 2 steps on the `tiny_store` fixture
TINY_RUN = ["--epochs", "3", "--batch-size", "8", "--resolution", "32", "--scales", "2", "--k-samples", "4",
            "--device", "cpu", "--threads", "1", "--cache", "ram", "--warmup-epochs", "0.5"]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to show that nothing was touched)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def evaluate_fakes():
    """tests/evaluate/conftest.py as a module (its FakeReader), without clashing with ours."""
    spec = importlib.util.spec_from_file_location("evaluate_fakes", TESTS / "evaluate" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A PNG whose header says ``width`` x ``height`` (8-bit gray), with a token of pixel data:
    a decoder that trusts the header would allocate 400 MB; the file itself is 60 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path
