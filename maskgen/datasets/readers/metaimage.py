"""A small MetaImage (.mhd + .raw) reader and writer, enough for CAMUS 2019.

MetaImage is a text header (``Key = Value`` lines) naming a raw pixel file. ``DimSize`` lists
the sizes fastest axis first (x, y[, z]), so the raw bytes reshape to (z, y, x) = (T, H, W):
frames come out upright with no transpose. Written here to avoid SimpleITK (a 50 MB wheel).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from maskgen.datasets.frames import CorruptFrameError

_TYPES = {
    "MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2",
    "MET_UINT": "u4", "MET_INT": "i4", "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}


def read_header(path: Path) -> dict[str, str]:
    """The ``Key = Value`` pairs of an .mhd header (raises CorruptFrameError)."""
    try:
        text = Path(path).read_text(encoding="latin-1")
    except OSError as err:
        raise CorruptFrameError(str(path), f"cannot read MetaImage header: {err}") from err
    header = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            header[key.strip()] = value.strip()
    for key in ("DimSize", "ElementType", "ElementDataFile"):
        if key not in header:
            raise CorruptFrameError(str(path), f"MetaImage header lacks {key}")
    return header


def dims(header: dict[str, str]) -> tuple[int, ...]:
    """DimSize as ints, fastest axis first (x, y[, z])."""
    return tuple(int(v) for v in header["DimSize"].split())


def frame_count(path: Path) -> int:
    """Frames (z size, 1 for a 2-D image) from the header only."""
    size = dims(read_header(path))
    return size[2] if len(size) > 2 else 1


def read_volume(path: Path) -> np.ndarray:
    """Pixels of ``path``: (T, H, W) (T = 1 for a 2-D image), the file's dtype."""
    path = Path(path)
    header = read_header(path)
    size = dims(header)
    if header["ElementType"] not in _TYPES:
        raise CorruptFrameError(str(path), f"unsupported ElementType {header['ElementType']}")
    dtype = np.dtype(_TYPES[header["ElementType"]])
    msb = header.get("BinaryDataByteOrderMSB", header.get("ElementByteOrderMSB", "False"))
    dtype = dtype.newbyteorder(">" if msb.lower() == "true" else "<")
    raw_path = path.parent / header["ElementDataFile"]
    try:
        data = raw_path.read_bytes()
        if header.get("CompressedData", "False").lower() == "true":
            data = zlib.decompress(data)
    except (OSError, zlib.error) as err:
        raise CorruptFrameError(str(raw_path), f"cannot read MetaImage data: {err}") from err
    count = int(np.prod(size))
    if len(data) < count * dtype.itemsize:
        raise CorruptFrameError(str(raw_path), f"{len(data)} bytes, expected {count * dtype.itemsize} "
                                               f"for DimSize {size}")
    arr = np.frombuffer(data, dtype=dtype, count=count)
    depth = int(np.prod(size[2:])) if len(size) > 2 else 1
    return arr.reshape(depth, size[1], size[0]).astype(dtype.newbyteorder("="))


def write_volume(path: Path, volume: np.ndarray, spacing: tuple[float, ...] | None = None,
                 compressed: bool = False) -> None:
    """Write (H, W) or (T, H, W) uint8 as ``path`` (.mhd) + ``<stem>.raw`` (for fixtures/tests)."""
    path = Path(path)
    volume = np.ascontiguousarray(volume, dtype=np.uint8)
    size = volume.shape[::-1]
    raw_name = path.stem + (".zraw" if compressed else ".raw")
    data = volume.tobytes()
    (path.parent / raw_name).write_bytes(zlib.compress(data) if compressed else data)
    spacing = spacing or (1.0,) * len(size)
    lines = [
        "ObjectType = Image", f"NDims = {len(size)}", "BinaryData = True",
        "BinaryDataByteOrderMSB = False", f"CompressedData = {compressed}",
        f"ElementSpacing = {' '.join(str(s) for s in spacing)}",
        f"DimSize = {' '.join(str(s) for s in size)}", "ElementType = MET_UCHAR",
        f"ElementDataFile = {raw_name}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
