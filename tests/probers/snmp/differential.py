"""Mutated copies of a well-formed message, and the C varbind reader, for the tests that hold two
decoders to the same answer."""

from __future__ import annotations

import os
import random
from types import ModuleType

import pytest

from probe_exporter.probers.snmp import ber

# What community.py and engine.py catch from a decoder: any of them is "the packet is not readable".
DECODE_ERRORS = (ber.BerError, IndexError, ValueError)

# Long-form length bytes, valid and not: where a reader's length handling differs, these find it.
_LENGTH_BYTES = (0x80, 0x81, 0x82, 0x84, 0x85, 0xFF)


def mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """`count` copies of `data` with one to four bytes changed, set to a long-form length byte,
    inserted or cut off from there on."""
    out = []
    for _ in range(count):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            if not mutated:
                break
            choice = rng.random()
            spot = rng.randrange(len(mutated))
            if choice < 0.4:
                mutated[spot] = rng.randrange(256)
            elif choice < 0.55:
                mutated[spot] = rng.choice(_LENGTH_BYTES)
            elif choice < 0.8:
                del mutated[spot:]
            else:
                mutated.insert(spot, rng.randrange(256))
        out.append(bytes(mutated))
    return out


def require_c_reader() -> ModuleType:
    """The C varbind reader (probers/snmp/_berfast.c): pip builds it wherever a C compiler is. Without
    one the tests of it skip on a laptop, and fail in CI, whose machines have a compiler."""
    try:
        from probe_exporter.probers.snmp import _berfast
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("probe_exporter.probers.snmp._berfast was not built: is a C compiler installed?")
        pytest.skip("the C varbind reader was not built (no C compiler): the Python reader is in use",
                    allow_module_level=True)
    return _berfast
