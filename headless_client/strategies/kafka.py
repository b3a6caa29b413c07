"""Kafka's default partitioner: key bytes -> partition, exactly as the Java client does."""

from __future__ import annotations

import struct

from ..errors import InvalidName

__all__ = ["kafka_partition", "murmur2"]

_MASK32 = 0xFFFFFFFF
_SEED = 0x9747B28C
_M = 0x5BD1E995


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    hint = "; encode it first (Kafka keys are serialized bytes)" if isinstance(data, str) else ""
    raise TypeError(f"{what} must be bytes, not {type(data).__name__}: {data!r}{hint}")


def murmur2(data: bytes | bytearray | memoryview) -> int:
    """MurmurHash2 (32-bit, seed ``0x9747b28c``) of *data*, as Kafka's ``Utils.murmur2``.

    Returns the value Java returns: a signed 32-bit int in ``[-2**31, 2**31)``.
    (kafka-python's ``murmur2`` returns the same bits unsigned.)

    Args:
        data: The serialized key.

    Raises:
        TypeError: *data* is not bytes-like (a ``str`` must be encoded first).
    """
    data = _as_bytes(data, "murmur2 data")
    length = len(data)
    h = _SEED ^ length
    whole = length & ~3
    # Little-endian 4-byte words, as the Java code assembles them byte by byte.
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    tail = length - whole
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_partition(key: bytes | bytearray | memoryview, partitions: int) -> int:
    """The partition Kafka's Java default partitioner gives a keyed record.

    ``toPositive(murmur2(key)) % partitions`` where ``toPositive`` is ``& 0x7fffffff``
    (not ``abs``, which would overflow for ``-2**31``). Records without a key are
    spread by the producer's sticky partitioner instead; that needs no routing here.

    Args:
        key: The serialized record key.
        partitions: The topic's partition count.

    Returns:
        A partition number in ``range(partitions)``.

    Raises:
        TypeError: *key* is not bytes-like, or *partitions* is not an int.
        InvalidName: *partitions* is below 1.
    """
    if isinstance(partitions, bool) or not isinstance(partitions, int):
        raise TypeError(f"partitions must be an int, not {type(partitions).__name__}: {partitions!r}")
    if partitions < 1:
        raise InvalidName(f"partitions must be >= 1: {partitions!r}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
