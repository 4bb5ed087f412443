"""Read and write IDX files (the MNIST/EMNIST format), plain or gzip-compressed.

Files are read in place and never written back, so a read-only shared data folder works.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from hwr.errors import HwrError

# IDX type byte -> numpy dtype (big-endian where it matters).
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def find_idx(folder: Path, name: str) -> Path | None:
    """Return `folder/name` or `folder/name.gz`, whichever exists (plain first), else None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (`.gz` or plain) into a tensor, checking its header and length.

    Raises HwrError naming the file when it is truncated, not IDX, or not valid gzip.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise HwrError(f"cannot read {path}: {e}; delete it and download it again") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise HwrError(f"{path} is not an IDX file (bad magic number); replace it with the official file")
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise HwrError(f"{path} is truncated (header incomplete); delete it and download it again")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    found = len(raw) - header_len
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise HwrError(
            f"{path} is {what} (shape {tuple(shape)} needs {expected} bytes of data, found {found}); "
            "delete it and download it again"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def write_idx(path: str | Path, data: np.ndarray | torch.Tensor) -> Path:
    """Write `data` (uint8) as an IDX file; gzip-compressed when `path` ends in `.gz`."""
    path = Path(path)
    array = np.ascontiguousarray(data.numpy() if isinstance(data, torch.Tensor) else data)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx supports uint8 only, got {array.dtype}")
    payload = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)
    return path
