"""One way to mangle a DNS message for property tests (tests/test_fastwire.py, tests/test_fuzz.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def mangle(wire: bytes, ops: Iterable[tuple[str, int, Any]]) -> bytes:
    """*wire* with each of *ops* applied: bytes flipped or set, pointers written (to any
    offset, to their own or nearby, making loops and forward pointers), counts and
    lengths changed, the message cut, bytes inserted, appended, duplicated or deleted."""
    data = bytearray(wire)
    for op, where, arg in ops:
        at = where % (len(data) + 1)
        if op == "flip" and at < len(data):
            data[at] ^= arg
        elif op == "set" and at < len(data):
            data[at] = arg
        elif op in ("u16", "pointer", "self") and at + 2 <= len(data):
            value = {"u16": arg, "pointer": 0xC000 | arg, "self": 0xC000 | max(at + arg, 0) & 0x3FFF}[op]
            data[at : at + 2] = value.to_bytes(2, "big")
        elif op == "count" and len(data) >= 12:
            data[4 + 2 * where : 6 + 2 * where] = arg.to_bytes(2, "big")
        elif op == "cut":
            del data[at:]
        elif op == "extend":
            data += arg
        elif op == "insert":
            data[at:at] = arg
        elif op == "delete":
            del data[at : at + arg]
        elif op == "dup":
            data += data[at : at + arg]
        elif op == "rdlen" and at + 2 <= len(data):
            # Nudge a 16-bit field (an RDLENGTH when it lands on one) up or down.
            value = (int.from_bytes(data[at : at + 2], "big") + arg) & 0xFFFF
            data[at : at + 2] = value.to_bytes(2, "big")
    return bytes(data)
