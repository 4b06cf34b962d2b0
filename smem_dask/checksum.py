"""The checksum of the data: each block's 64-bit hash, and its packing into a pass's columns.
Part of the engine layer.

Every block b (its row chunk of X, y and the weights) has a 64-bit BLAKE2b hash of (b, its shape,
whether there are weights, the bytes of X in its dtype, little-endian, and of y and the weights as
float64). The data's checksum is the sum of the blocks' hashes modulo 2⁶⁴. A pass carries each
block's hash as four 16-bit pieces in float64 columns of its packed row: the tree reduction sums
them exactly (each column's sum stays below 2¹⁶ · 2³⁷ blocks = 2⁵³), whatever its order.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

__all__ = ["CHECKSUM_COLUMNS"]

#: float64 columns a checksummed pass appends: the four pieces of the sum over all blocks, then the
#: four pieces of the one sampled block (zeros elsewhere), compared with what the client reads
CHECKSUM_COLUMNS = 8
_MAX_BLOCKS = 2**37


def _block_hash(b: int, xb, yb, sb, fb=None) -> int:
    """The 64-bit hash of block ``b`` (see the module's docstring); with fold ids ``fb`` (a
    cross-validation's engine) they are hashed too, after the rest."""
    h = hashlib.blake2b(digest_size=8)
    h.update(struct.pack("<qqq?", int(b), int(xb.shape[0]), int(xb.shape[1]), sb is not None))
    xb = np.asarray(xb)
    h.update(np.ascontiguousarray(xb, dtype=xb.dtype.newbyteorder("<")).data)
    for v in (yb, sb):
        if v is not None:
            h.update(np.ascontiguousarray(v, dtype="<f8").data)
    if fb is not None:
        h.update(b"folds")
        h.update(np.ascontiguousarray(fb, dtype="<i8").data)
    return int.from_bytes(h.digest(), "little")


def _pieces(h: int) -> np.ndarray:
    return np.array([(h >> shift) & 0xFFFF for shift in (48, 32, 16, 0)], dtype=np.float64)


def _joined(pieces) -> int:
    """The 64-bit sum (mod 2⁶⁴) from its four summed 16-bit piece columns."""
    total = 0
    for value, shift in zip(pieces, (48, 32, 16, 0), strict=True):
        if not (float(value).is_integer() and 0 <= value < 2**53):
            raise ValueError(f"a checksum column summed to {value!r}, not an exact integer")
        total += int(value) << shift
    return total % 2**64


def _hex(h: int) -> str:
    return f"blake2b-64-sum:{h:016x}"
