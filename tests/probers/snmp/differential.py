"""Mutated copies of a well-formed message, and the C varbind reader, for the tests that hold two
decoders to the same answer."""

from __future__ import annotations

import importlib
import os
import random
from types import ModuleType

import pytest

from probe_exporter.probers.snmp import ber, render

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


def _require_extension(name: str, what: str) -> ModuleType:
    """An optional C part of the SNMP prober: pip builds it wherever a C compiler is. Without one the
    tests of it skip on a laptop, and fail in CI, whose machines have a compiler."""
    try:
        return importlib.import_module(f"probe_exporter.probers.snmp.{name}")
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"probe_exporter.probers.snmp.{name} was not built: is a C compiler installed?")
        pytest.skip(f"the C {what} was not built (no C compiler): the Python one is in use", allow_module_level=True)


def require_c_reader() -> ModuleType:
    """The C varbind reader (probers/snmp/_berfast.c)."""
    return _require_extension("_berfast", "varbind reader")


def require_c_renderer() -> ModuleType:
    """The C path of render_pdu (probers/snmp/_renderfast.c)."""
    return _require_extension("_renderfast", "renderer")


@pytest.fixture(autouse=True, params=["c", "python"])
def varbind_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """For the decoder tests that import it: each runs with the C varbind reader and the Python one."""
    if request.param == "python":
        monkeypatch.setattr(ber, "_varbinds", ber._varbinds_python)
    else:
        require_c_reader()
    assert ber.varbind_reader() == request.param
    return str(request.param)


@pytest.fixture(autouse=True, params=["c", "python"])
def pdu_renderer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """For the render tests that import it: each runs with render_pdu's C path and with the Python one."""
    if request.param == "python":
        monkeypatch.setattr(render, "render_pdu", render._render_pdu_python)
    else:
        require_c_renderer()
    assert render.pdu_renderer() == request.param
    return str(request.param)
