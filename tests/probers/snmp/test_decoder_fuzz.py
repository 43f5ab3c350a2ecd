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
from probe_exporter.probers.snmp import ber, community, v3
from tests.probers.snmp.differential import DECODE_ERRORS, mutations

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


@pytest.mark.parametrize("auth", ["v3sha_aes", "v3sha256", "v3noauth", "v3md5_des"])
@pytest.mark.parametrize("seed", range(6))
async def test_garbage_answers_fail_the_probe_cleanly(config: Config, seed: int, auth: str) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _GarbageAgent(seed), local_addr=("127.0.0.1", 0))
    try:
        target = f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
        outcome = await run_probe("system", config.modules["system"], target, 1.0, {"auth": auth}, config)
    finally:
        transport.close()
    text = render_text(collect_sorted([outcome.metrics])).decode()
    assert not outcome.success
    assert "probe_success 0" in text
    log = outcome.log.text()
    assert "internal error" not in log, log
    assert "Error scraping target" in log or "Timeout reached" in log, log


class _HostileV3Agent(asyncio.DatagramProtocol):
    """A v3 agent that discovers properly, then answers with authentic responses for `user`, a few
    bytes of each changed: the MAC, cipher and PDU paths all meet garbage."""

    ENGINE = v3.EngineState(b"\x80\x00\x1f\x88\x04hostile", 3, 1000, 0.0)

    def __init__(self, seed: int, user: v3.User) -> None:
        self.random = random.Random(seed)
        self.user = user
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        incoming = v3.decode_message(data)
        if not incoming.engine_id:  # discovery: a proper report
            report = ber.encode_tlv(ber.REPORT, ber.encode_int(0) + ber.encode_int(0) + ber.encode_int(0)
                                    + ber.encode_tlv(0x30, b""))
            answer = v3.encode_message(incoming.msg_id, v3.User(b"", 1), self.ENGINE,
                                       v3.scoped_pdu(self.ENGINE.engine_id, b"", report), 0.0)
        else:
            request_id = v3.open_scoped(incoming, self.user if self.user.level > 1 else None)[3]
            varbind = ber.encode_tlv(0x30, ber.encode_tlv(0x06, ber.encode_oid((1, 3, 6, 1, 2, 1, 1, 5, 0)))
                                     + ber.encode_tlv(0x04, b"hostile"))
            response = ber.encode_tlv(ber.RESPONSE, ber.encode_int(request_id) + ber.encode_int(0)
                                      + ber.encode_int(0) + ber.encode_tlv(0x30, varbind))
            mutable = bytearray(v3.encode_message(incoming.msg_id, self.user, self.ENGINE,
                                                  v3.scoped_pdu(self.ENGINE.engine_id, b"", response), 0.0))
            for _ in range(self.random.randint(0, 3)):
                mutable[self.random.randrange(12, len(mutable))] = self.random.randrange(256)
            answer = bytes(mutable)
        assert self.transport is not None
        self.transport.sendto(answer, addr)


@pytest.mark.parametrize("auth", ["v3sha_aes", "v3sha256", "v3noauth", "v3md5_des"])
@pytest.mark.parametrize("seed", range(5))
async def test_mutated_authentic_answers_never_crash(config: Config, seed: int, auth: str) -> None:
    from tests.probers.snmp.conftest import SNMPD_USERS

    level, auth_protocol, password, priv, priv_password = SNMPD_USERS[auth]
    user = v3.User(auth.encode(), v3.LEVELS[level], auth_protocol, priv, password.encode(), priv_password.encode())
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _HostileV3Agent(seed, user),
                                                       local_addr=("127.0.0.1", 0))
    try:
        target = f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
        outcome = await run_probe("system", config.modules["system"], target, 1.0, {"auth": auth}, config)
    finally:
        transport.close()
    log = outcome.log.text()
    assert "internal error" not in log, log
    if outcome.success:  # nothing was changed in what mattered: the agent's one value came through
        assert 'sysName{sysName="hostile"} 1' in render_text(collect_sorted([outcome.metrics])).decode()
    else:
        assert "Error scraping target" in log or "Timeout reached" in log, log


class _CrossVersionAgent(asyncio.DatagramProtocol):
    """Answers a v3 request with a v2c Response carrying its msgID as request-id, and a v2c request
    with a v3 message carrying its request-id as msgID: the transport routes both to the waiter."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg_id = v3.peek_msg_id(data)
        if msg_id is not None:
            pdu = ber.encode_tlv(ber.RESPONSE, ber.encode_int(msg_id) + ber.encode_int(0) + ber.encode_int(0)
                                 + ber.encode_tlv(0x30, b""))
            answer = ber.encode_tlv(0x30, ber.encode_int(1) + ber.encode_tlv(0x04, b"public") + pdu)
        else:
            _, pos, _ = ber.tlv(data, 0)
            _, _, pos = ber.tlv(data, pos)  # version
            _, _, pos = ber.tlv(data, pos)  # community
            _, pos, _ = ber.tlv(data, pos)  # the PDU
            _, start, stop = ber.tlv(data, pos)
            request_id = ber.signed(data[start:stop])
            answer = v3.encode_message(request_id, None, None, v3.scoped_pdu(b"", b"", PDU), 0.0)
        self.transport.sendto(answer, addr)


@pytest.mark.parametrize("auth", ["v3sha_aes", "v3noauth", "snmpd_public"])
async def test_an_answer_of_the_other_version_fails_cleanly(config: Config, auth: str) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_CrossVersionAgent, local_addr=("127.0.0.1", 0))
    try:
        target = f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
        outcome = await run_probe("system", config.modules["system"], target, 1.0, {"auth": auth}, config)
    finally:
        transport.close()
    log = outcome.log.text()
    assert not outcome.success
    assert "internal error" not in log, log
    assert "is not an SNMPv3 message" in log or "is an SNMPv3 message" in log, log


def test_the_v1_v2c_shortcut_of_peek_msg_id_changes_no_answer() -> None:
    """Where the shortcut says "not v3" for a packet the full read refuses, the v1/v2c decoder refuses
    it too: community.parse_answer drops exactly the same packets and routes the rest the same way."""
    rng = random.Random(11)
    for data in [V2C_RESPONSE, V3_MESSAGE, V3_PLAIN, *mutations(V2C_RESPONSE, rng, 4000),
                 *mutations(V3_MESSAGE, rng, 4000)]:
        try:
            expected: object = v3.msg_id_by_fields(data)
        except DECODE_ERRORS:
            expected = "refused"
        try:
            found: object = v3.peek_msg_id(data)
        except DECODE_ERRORS:
            found = "refused"
        if found != expected:
            assert found is None and expected == "refused", data.hex()
            assert community.parse_answer(data) is None, data.hex()
    assert v3.peek_msg_id(V2C_RESPONSE) is None and v3.peek_msg_id(V3_MESSAGE) == 17
