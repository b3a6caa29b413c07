"""murmur2 and kafka_partition against Kafka's vectors and kafka-python."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headless_client.errors import InvalidName
from headless_client.strategies import kafka_partition, murmur2

with warnings.catch_warnings():
    # kafka-python's package import uses importlib.resources APIs deprecated in 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed Java ints).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "expected"), JAVA_VECTORS.items())
def test_java_vectors(data: bytes, expected: int) -> None:
    """murmur2 returns exactly what Kafka's Java Utils.murmur2 returns."""
    assert murmur2(data) == expected


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_matches_kafka_python(data: bytes) -> None:
    """Same bits as kafka-python's murmur2 (which is unsigned), as a signed int."""
    ours = murmur2(data)
    assert -(2**31) <= ours < 2**31
    assert ours & 0xFFFFFFFF == kafka_python_murmur2(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(min_value=1, max_value=10_000))
def test_partition_is_kafkas(key: bytes, partitions: int) -> None:
    """The default partitioner's formula: toPositive(murmur2) % partitions."""
    expected = (kafka_python_murmur2(key) & 0x7FFFFFFF) % partitions
    assert kafka_partition(key, partitions) == expected


def test_partition_vectors() -> None:
    """A few pinned partitions for 12 partitions."""
    assert [kafka_partition(k, 12) for k in (b"21", b"foobar", b"abc")] == [0, 6, 3]


def test_to_positive_is_a_mask_not_abs() -> None:
    """Negative hashes are masked, as Java's Utils.toPositive does."""
    assert murmur2(b"21") < 0
    assert kafka_partition(b"21", 1000) == (-973932308 & 0x7FFFFFFF) % 1000


def test_bytes_like_keys() -> None:
    """bytearray and memoryview hash like bytes."""
    assert murmur2(bytearray(b"foobar")) == murmur2(memoryview(b"foobar")) == -790332482


@pytest.mark.parametrize("key", ["foobar", None, 12])
def test_key_must_be_bytes(key: object) -> None:
    """A str (or anything not bytes) is a TypeError; str gets an encoding hint."""
    with pytest.raises(TypeError, match=type(key).__name__):
        kafka_partition(key, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        murmur2(key)  # type: ignore[arg-type]


def test_str_key_hint() -> None:
    """The error for a str says to encode it."""
    with pytest.raises(TypeError, match="encode"):
        murmur2("key")  # type: ignore[arg-type]


@pytest.mark.parametrize("partitions", [0, -3])
def test_partition_count_must_be_positive(partitions: int) -> None:
    """Zero or negative partition counts are InvalidName (a ValueError)."""
    with pytest.raises(InvalidName, match=str(partitions)):
        kafka_partition(b"k", partitions)


@pytest.mark.parametrize("partitions", [True, 3.0, "3", None])
def test_partition_count_must_be_an_int(partitions: object) -> None:
    """Non-int partition counts are a TypeError."""
    with pytest.raises(TypeError, match="partitions"):
        kafka_partition(b"k", partitions)  # type: ignore[arg-type]
