"""Truncated, mutated and random packets into the BER and SNMPv3 decoders: a decoding error (which
the transport and the session turn into a dropped packet or a failed probe), never anything else."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe_exporter.config import Config, load_config
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from probe_exporter.probers.snmp import ber, v3

DECODE_ERRORS = (ber.BerError, IndexError, ValueError)  # what community.py and engine.py catch
USER = v3.User(b"fuzz", 3, "SHA256", "AES", b"authpass123", b"privpass123")
STATE = v3.EngineState(b"\x80\x00\x1f\x88\x04fuzz-engine", 1, 500, 0.0)
PDU = ber.encode_pdu(ber.GET_BULK, 17, [(1, 3, 6, 1, 2, 1, 1)], 10)
V3_MESSAGE = v3.encode_message(17, USER, STATE, v3.scoped_pdu(STATE.engine_id, b"", PDU), 0.0)
V3_PLAIN = v3.encode_message(18, v3.User(b"fuzz", 1), STATE, v3.scoped_pdu(STATE.engine_id, b"", PDU), 0.0)
V2C_RESPONSE = bytes.fromhex("302902010104067075626c6963a21c0204000000110201000201003"
                             "00e300c06082b060102010105000400")


def _decode_everything(data: bytes) -> None:
    for step in (ber.decode_response, v3.peek_msg_id):
        try:
            step(data)
        except DECODE_ERRORS:
            pass
    try:
        incoming = v3.decode_message(data)
    except DECODE_ERRORS:
        return
    for user in (USER, None):
        try:
            if user is not None:
                v3.authentic(data, incoming, user)
            v3.open_scoped(incoming, user)
        except DECODE_ERRORS:
            pass


def test_the_samples_are_valid() -> None:
    assert ber.decode_response(V2C_RESPONSE)[2] == 17
    assert v3.authentic(V3_MESSAGE, v3.decode_message(V3_MESSAGE), USER)
    assert v3.open_scoped(v3.decode_message(V3_PLAIN), None)[2] == ber.GET_BULK


@pytest.mark.parametrize("sample", [V2C_RESPONSE, V3_MESSAGE, V3_PLAIN], ids=["v2c", "v3-authpriv", "v3-plain"])
def test_every_truncation(sample: bytes) -> None:
    for end in range(len(sample)):
        _decode_everything(sample[:end])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _decode_everything(data)
    _decode_everything(b"\x30" + data)
    _decode_everything(b"\x30\x81" + bytes((len(data) & 0x7F,)) + b"\x02\x01\x03" + data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([V2C_RESPONSE, V3_MESSAGE, V3_PLAIN]), st.lists(
    st.tuples(st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=255)), min_size=1,
    max_size=6))
def test_mutated_messages(sample: bytes, changes: list[tuple[int, int]]) -> None:
    data = bytearray(sample)
    for position, value in changes:
        data[position % len(data)] = value
    _decode_everything(bytes(data))


# --- end to end: a hostile agent answering v3 with garbage ------------------------------------------


class _GarbageAgent(asyncio.DatagramProtocol):
    """Answers each request with a mutated copy of itself (so the msgID is often still ours)."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = bytearray(data)
        for _ in range(self.random.randint(0, 4)):
            answer[self.random.randrange(12, len(answer))] = self.random.randrange(256)
        assert self.transport is not None
        self.transport.sendto(bytes(answer), addr)


@pytest.fixture(scope="module")
def config(shared_snmp_yml: Path, test_auths_yml: Path) -> Config:
    return load_config([str(shared_snmp_yml), str(test_auths_yml)])


@pytest.mark.parametrize("seed", range(8))
async def test_garbage_answers_fail_the_probe_cleanly(config: Config, seed: int) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _GarbageAgent(seed), local_addr=("127.0.0.1", 0))
    try:
        target = f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
        outcome = await run_probe("system", config.modules["system"], target, 1.0, {"auth": "v3sha_aes"}, config)
    finally:
        transport.close()
    text = render_text(collect_sorted([outcome.metrics])).decode()
    assert not outcome.success
    assert "probe_success 0" in text
    log = outcome.log.text()
    assert "internal error" not in log, log
    assert "Error scraping target" in log or "Timeout reached" in log, log
