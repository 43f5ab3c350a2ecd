"""The C varbind reader (probers/snmp/_berfast.c) against the Python one it replaces: the same
varbinds, or an error from both, for well-formed lists of every value type and for thousands of
mutated and random ones (a hostile agent's packet must only ever raise)."""

from __future__ import annotations

import random
import struct

from probe_exporter.probers.snmp import ber
from tests.probers.snmp.differential import DECODE_ERRORS, mutations, require_c_reader

_berfast = require_c_reader()


def test_the_c_reader_is_the_one_in_use() -> None:
    assert ber.varbind_reader() == "c"


def _value_tlvs(rng: random.Random) -> list[bytes]:
    """One encoded value of every kind the readers know, plus shapes at the edges of each."""
    tlv = ber.encode_tlv
    values = [tlv(0x02, rng.randbytes(n)) for n in (0, 1, 2, 4, 7, 8, 9, 17)]
    values += [tlv(tag, rng.randbytes(n)) for tag in (0x41, 0x42, 0x43, 0x46) for n in (0, 1, 4, 5, 8, 9, 12)]
    values += [tlv(0x04, rng.randbytes(n)) for n in (0, 1, 127, 128, 300)]
    values += [tlv(0x06, ber.encode_oid(oid)) for oid in ((1, 3, 6, 1, 4, 1, 9, 4294967295), (2, 999, 3), (0, 0))]
    values += [tlv(0x40, bytes(n)) for n in (0, 4, 16)] + [tlv(0x40, b"\x0a\xff\x00\x63")]
    values += [tlv(0x44, b"\x9f\x78\x04" + struct.pack(">f", 0.46)),
               tlv(0x44, b"\x9f\x79\x08" + struct.pack(">d", -2.5)),
               tlv(0x44, b"\x01\x02")]
    values += [b"\x05\x00", b"\x80\x00", b"\x81\x00", b"\x82\x00", tlv(0x45, b"\x01\x02\x03"), tlv(0xA9, b"")]
    return values


def _varbind_list(rng: random.Random, count: int) -> bytes:
    values = _value_tlvs(rng)
    oids = [(1, 3, 6, 1, 2, 1, 2, 2, 1, rng.randrange(30), rng.choice((1, 127, 128, 16384, 2**32 - 1)))
            for _ in range(count)]
    return ber.encode_tlv(0x30, b"".join(
        ber.encode_tlv(0x30, ber.encode_tlv(0x06, ber.encode_oid(oid)) + rng.choice(values)) for oid in oids))


def _read(reader: object, data: bytes) -> str:
    """What a reader makes of the list at the start of `data`: its varbinds' repr (NaN-safe), or "error"."""
    try:
        _, pos, end = ber.tlv(data, 0)
        return repr(reader(data, pos, end))  # type: ignore[operator]
    except DECODE_ERRORS:
        return "error"


def test_well_formed_lists_read_the_same() -> None:
    rng = random.Random(1)
    for count in (0, 1, 25, 200):
        data = _varbind_list(rng, count)
        python = _read(ber._varbinds_python, data)
        assert python != "error"
        assert _read(_berfast.varbinds, data) == python


def test_mutated_lists_read_the_same_or_fail_in_both() -> None:
    rng = random.Random(2)
    outcomes = {"error": 0, "read": 0}
    for count in (1, 3, 25):
        data = _varbind_list(rng, count)
        for mutated in mutations(data, rng, 6000):
            python = _read(ber._varbinds_python, mutated)
            assert _read(_berfast.varbinds, mutated) == python, mutated.hex()
            outcomes["error" if python == "error" else "read"] += 1
    assert min(outcomes.values()) > 1000  # both branches were exercised


def test_random_bytes_read_the_same_or_fail_in_both() -> None:
    rng = random.Random(3)
    for _ in range(20000):
        data = b"\x30" + bytes((rng.randrange(256),)) + rng.randbytes(rng.randrange(40))
        assert _read(_berfast.varbinds, data) == _read(ber._varbinds_python, data), data.hex()


def test_hostile_oids_fail_as_in_python() -> None:
    for raw in (b"", b"\x2b\x06\x81", b"\x2b" + b"\xff" * 60000 + b"\x7f", b"\x88\x80\x80\x80\x80\x00", b"\xff" * 5):
        data = ber.encode_tlv(0x30, ber.encode_tlv(0x30, ber.encode_tlv(0x06, raw) + b"\x02\x01\x01"))
        assert _read(_berfast.varbinds, data) == _read(ber._varbinds_python, data) == "error"
        as_value = ber.encode_tlv(0x30, ber.encode_tlv(0x30, b"\x06\x01\x2b" + ber.encode_tlv(0x06, raw)))
        assert _read(_berfast.varbinds, as_value) == _read(ber._varbinds_python, as_value) == "error"
