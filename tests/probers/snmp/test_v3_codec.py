"""SNMPv3 messages of our codec (v3.py, usm.py) read by pysnmp/pyasn1, and pysnmp's read by ours:
keys, MACs, ciphers and every field, for every auth and priv protocol snmp_exporter accepts."""

from __future__ import annotations

import random

import pysnmp.proto.secmod.rfc3414.service  # noqa: F401  (before eso.priv: pysnmp's modules import in a cycle)
import pytest
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto.api import v2c
from pysnmp.proto.mpmod.rfc3412 import ScopedPDU, SNMPv3Message
from pysnmp.proto.secmod.eso.priv import aes192, aes256
from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
from pysnmp.proto.secmod.rfc3414.priv import des
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

from probe_exporter.probers.snmp import ber, usm, v3
from probe_exporter.probers.snmp.values import INTEGER, OCTETS
from tests.probers.snmp.differential import mutations
from tests.support.forking import in_forked_child

AUTH_SERVICES = {
    "MD5": hmacmd5.HmacMd5(),
    "SHA": hmacsha.HmacSha(),
    "SHA224": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA224_SERVICE_ID),
    "SHA256": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA256_SERVICE_ID),
    "SHA384": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SAH384_SERVICE_ID),
    "SHA512": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA512_SERVICE_ID),
}
# Our names as gosnmp's: AES192/256 extend the key as Blumenthal, the C forms as Reeder.
PRIV_SERVICES = {
    "DES": des.Des(),
    "AES": aes.Aes(),
    "AES192": aes192.AesBlumenthal192(),
    "AES256": aes256.AesBlumenthal256(),
    "AES192C": aes192.Aes192(),
    "AES256C": aes256.Aes256(),
}
ENGINE_ID = univ.OctetString(hexValue="80001f8880e9630000d61ff449").asOctets()
ENGINE = univ.OctetString(ENGINE_ID)  # pysnmp wants its own type
PAIRS = [(a, p) for a in AUTH_SERVICES for p in [None, *PRIV_SERVICES]]


def _user(auth: str | None, priv: str | None) -> v3.User:
    level = 1 if auth is None else 2 if priv is None else 3
    return v3.User(b"user-" + (auth or "none").encode(), level, auth or "", priv or "", b"authpass123",
                   b"privpass123")


def test_rfc3414_key_localisation_vectors() -> None:
    # RFC 3414 A.3.1 and A.3.2.
    engine = bytes.fromhex("000000000000000000000002")
    assert usm.auth_key(b"maplesyrup", "MD5", engine).hex() == "526f5eed9fcce26f8964c2930787d82b"
    assert usm.auth_key(b"maplesyrup", "SHA", engine).hex() == "6695febc9288e36282235fc7151f128497b38f3f"


@pytest.mark.parametrize("auth", sorted(AUTH_SERVICES))
def test_auth_keys_equal_pysnmp(auth: str) -> None:
    service = AUTH_SERVICES[auth]
    expected = service.localize_key(service.hash_passphrase(b"authpass123"), ENGINE)
    assert usm.auth_key(b"authpass123", auth, ENGINE_ID) == bytes(expected)


@pytest.mark.parametrize(("auth", "priv"), [(a, p) for a in AUTH_SERVICES for p in PRIV_SERVICES])
def test_priv_keys_equal_pysnmp(auth: str, priv: str) -> None:
    service = PRIV_SERVICES[priv]
    protocol = AUTH_SERVICES[auth].SERVICE_ID if auth in ("MD5", "SHA") else {
        "SHA224": hmacsha2.HmacSha2.SHA224_SERVICE_ID, "SHA256": hmacsha2.HmacSha2.SHA256_SERVICE_ID,
        "SHA384": hmacsha2.HmacSha2.SAH384_SERVICE_ID, "SHA512": hmacsha2.HmacSha2.SHA512_SERVICE_ID}[auth]
    expected = service.localize_key(protocol, service.hash_passphrase(protocol, b"privpass123"), ENGINE)
    assert usm.priv_key(b"privpass123", auth, priv, ENGINE_ID) == bytes(expected)[:usm.PRIV_PROTOCOLS[priv][0]]


def test_key_localisation_is_cached() -> None:
    usm.clear_cache()
    usm.auth_key(b"cached-password", "SHA", ENGINE_ID)
    calls = []
    original = usm.password_to_key
    usm.password_to_key = lambda *args: calls.append(args) or original(*args)  # type: ignore[assignment]
    try:
        for _ in range(3):
            usm.auth_key(b"cached-password", "SHA", ENGINE_ID)
        usm.auth_key(b"cached-password", "SHA", ENGINE_ID + b"x")  # another engine: localised anew
    finally:
        usm.password_to_key = original  # type: ignore[assignment]
    assert len(calls) == 1
    assert not any(b"cached-password" in key[0] for key in usm._cache)


@pytest.mark.parametrize("priv", sorted(PRIV_SERVICES))
def test_ciphers_equal_pysnmps_for_every_length_under_one_key(priv: str) -> None:
    """usm.py keeps one cipher context per key and moves it to each message's IV; messages of every
    length, one after another under the same key, must read in pysnmp as they do alone, and back."""
    service = PRIV_SERVICES[priv]
    key = usm.priv_key(b"privpass123", "SHA256", priv, ENGINE_ID)
    rng = random.Random(priv)
    for length in [*range(0, 70), 1400, 1401, 65, 3, 0, 16, 17]:
        plaintext = rng.randbytes(length)
        boots, engine_time = rng.randrange(2**31), rng.randrange(2**31)
        ours = usm.encrypt(priv, key, boots, engine_time, plaintext)
        theirs = bytes(service.decrypt_data(univ.OctetString(key), (boots, engine_time, univ.OctetString(ours.salt)),
                                            univ.OctetString(ours.data)))
        assert theirs[:length] == plaintext, length
        encrypted, salt = service.encrypt_data(univ.OctetString(key), (boots, engine_time, None), plaintext)
        back = usm.decrypt(priv, key, boots, engine_time, bytes(salt), bytes(encrypted))
        assert back[:length] == plaintext, length
        if priv != "DES":  # a stream mode: exactly as long as the plaintext
            assert len(ours.data) == len(back) == length


def _pysnmp_read(data: bytes, user: v3.User, state: v3.EngineState) -> tuple[dict[str, object], bytes]:
    """Decode with pyasn1 and check MAC and cipher with pysnmp's USM services."""
    message, rest = decoder.decode(data, asn1Spec=SNMPv3Message())
    assert rest == b""
    header = message["msgGlobalData"]
    params, rest = decoder.decode(bytes(message["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    assert rest == b""
    fields = {"version": int(message["msgVersion"]), "msg_id": int(header["msgID"]),
              "max_size": int(header["msgMaxSize"]), "flags": bytes(header["msgFlags"]),
              "model": int(header["msgSecurityModel"]), "engine_id": bytes(params["msgAuthoritativeEngineId"]),
              "boots": int(params["msgAuthoritativeEngineBoots"]), "time": int(params["msgAuthoritativeEngineTime"]),
              "user": bytes(params["msgUserName"])}
    if user.level >= 2:
        service = AUTH_SERVICES[user.auth_protocol]
        key = service.localize_key(service.hash_passphrase(user.auth_password), univ.OctetString(state.engine_id))
        service.authenticate_incoming_message(key, params["msgAuthenticationParameters"], data)  # raises if wrong
    scoped_data = message["msgData"]
    if user.level == 3:
        cipher = PRIV_SERVICES[user.priv_protocol]
        key = usm.priv_key(user.priv_password, user.auth_protocol, user.priv_protocol, state.engine_id)
        plaintext = cipher.decrypt_data(univ.OctetString(key), (fields["boots"], fields["time"],
                                                                params["msgPrivacyParameters"]),
                                        scoped_data["encryptedPDU"])
        scoped, _ = decoder.decode(plaintext, asn1Spec=ScopedPDU())
    else:
        scoped = scoped_data["plaintext"]
    return fields, encoder.encode(scoped)


@pytest.mark.parametrize(("auth", "priv"), [*PAIRS, (None, None)])
def test_our_messages_decode_identically_in_pysnmp(auth: str | None, priv: str | None) -> None:
    user = _user(auth, priv)
    state = v3.EngineState(ENGINE_ID, 7, 123456, 0.0)
    pdu = ber.encode_pdu(ber.GET_BULK, 4242, [(1, 3, 6, 1, 2, 1, 1), (1, 3, 6, 1, 2, 1, 2, 2, 1, 10)], 25)
    scoped = v3.scoped_pdu(ENGINE_ID, b"ctx", pdu)
    data = v3.encode_message(99, user, state, scoped, 10.5)
    fields, plain_scoped = _pysnmp_read(data, user, state)
    assert fields == {"version": 3, "msg_id": 99, "max_size": v3.MAX_MESSAGE_SIZE, "flags": bytes((user.flags(),)),
                      "model": 3, "engine_id": ENGINE_ID, "boots": 7, "time": 123466, "user": user.name}
    assert plain_scoped == scoped  # byte for byte, so every PDU field is pysnmp's too
    read, _ = decoder.decode(plain_scoped, asn1Spec=ScopedPDU())
    bulk = read["data"].getComponent()
    assert int(v2c.apiBulkPDU.get_max_repetitions(bulk)) == 25
    assert [tuple(vb[0]) for vb in v2c.apiPDU.get_varbinds(bulk)] == [(1, 3, 6, 1, 2, 1, 1),
                                                                       (1, 3, 6, 1, 2, 1, 2, 2, 1, 10)]


def test_discovery_message_is_empty_noauth() -> None:
    data = v3.encode_message(5, None, None, v3.scoped_pdu(b"", b"", ber.encode_pdu(ber.GET, 6, [])), 0.0)
    fields, _ = _pysnmp_read(data, _user(None, None), v3.EngineState(b"", 0, 0, 0.0))
    assert fields["flags"] == b"\x04" and fields["engine_id"] == b"" and fields["user"] == b""


def _pysnmp_message(user: v3.User, state: v3.EngineState, pdu_tag: str) -> bytes:
    """A Response (or Report) built with pyasn1 and protected with pysnmp's USM services."""
    pdu = v2c.ResponsePDU() if pdu_tag == "response" else v2c.ReportPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, 4242)
    v2c.apiPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 1, 5, 0), v2c.OctetString(b"agent")),
                                  ((1, 3, 6, 1, 2, 1, 1, 7, 0), v2c.Integer(72))])
    scoped = ScopedPDU()
    scoped["contextEngineId"] = state.engine_id
    scoped["contextName"] = b""
    scoped["data"].setComponentByType(pdu.tagSet, pdu)
    params = UsmSecurityParameters()
    params["msgAuthoritativeEngineId"] = state.engine_id
    params["msgAuthoritativeEngineBoots"] = state.boots
    params["msgAuthoritativeEngineTime"] = state.time
    params["msgUserName"] = user.name
    mac_length = usm.mac_length(user.auth_protocol) if user.level >= 2 else 0
    params["msgAuthenticationParameters"] = b"\0" * mac_length
    message = SNMPv3Message()
    message["msgVersion"] = 3
    header = message["msgGlobalData"]
    header["msgID"] = 77
    header["msgMaxSize"] = 65507
    header["msgFlags"] = bytes((user.flags() & 3,))
    header["msgSecurityModel"] = 3
    if user.level == 3:
        cipher = PRIV_SERVICES[user.priv_protocol]
        key = usm.priv_key(user.priv_password, user.auth_protocol, user.priv_protocol, state.engine_id)
        encrypted, salt = cipher.encrypt_data(univ.OctetString(key), (state.boots, state.time, None),
                                              encoder.encode(scoped))
        params["msgPrivacyParameters"] = salt
        message["msgData"]["encryptedPDU"] = encrypted
    else:
        params["msgPrivacyParameters"] = b""
        message["msgData"]["plaintext"] = scoped
    message["msgSecurityParameters"] = encoder.encode(params)
    data = encoder.encode(message)
    if user.level >= 2:
        service = AUTH_SERVICES[user.auth_protocol]
        key = service.localize_key(service.hash_passphrase(user.auth_password), univ.OctetString(state.engine_id))
        data = bytes(service.authenticate_outgoing_message(key, data))
    return data


@pytest.mark.parametrize(("auth", "priv"), [*PAIRS, (None, None)])
def test_pysnmp_messages_decode_identically_in_ours(auth: str | None, priv: str | None) -> None:
    user = _user(auth, priv)
    state = v3.EngineState(ENGINE_ID, 3, 98765, 0.0)
    data = _pysnmp_message(user, state, "response")
    incoming = v3.decode_message(data)
    assert (incoming.msg_id, incoming.flags, incoming.engine_id, incoming.boots, incoming.time,
            incoming.user_name) == (77, user.flags() & 3, ENGINE_ID, 3, 98765, user.name)
    if user.level >= 2:
        assert v3.authentic(data, incoming, user)
        tampered = bytearray(data)
        tampered[-1] ^= 1
        assert not v3.authentic(bytes(tampered), v3.decode_message(bytes(tampered)), user)
    opened = v3.open_scoped(incoming, user if user.level >= 2 else None)
    assert opened == (ENGINE_ID, b"", ber.RESPONSE, 4242, 0, 0,
                      [((1, 3, 6, 1, 2, 1, 1, 5, 0), (OCTETS, b"agent")), ((1, 3, 6, 1, 2, 1, 1, 7, 0), (INTEGER, 72))])


def test_report_kinds_name_the_usm_statistic() -> None:
    assert v3.report_kind([((*v3.USM_STATS, 5, 0), (ber.signed(b"\x01"), 1))])[1].startswith("wrong digest")
    assert v3.report_kind([((*v3.USM_STATS, 3, 0), (2, 1))])[0] == v3.UNKNOWN_USER_NAMES
    assert v3.report_kind([((1, 3, 6, 1, 6, 3, 12, 1, 4, 0), (2, 1))]) == (
        0, "report from the agent: 1.3.6.1.6.3.12.1.4.0")


def test_engine_clock_moves_on_and_learns_only_newer() -> None:
    state = v3.EngineState(ENGINE_ID, 2, 1000, 50.0)
    assert state.time_at(60.9) == 1010
    state.learn(2, 900, 60.0)  # older: ignored
    assert (state.boots, state.time) == (2, 1000)
    state.learn(3, 5, 61.0)  # rebooted: taken
    assert (state.boots, state.time, state.synced_at) == (3, 5, 61.0)


@pytest.mark.parametrize("level", [1, 3])
def test_the_usual_shape_reader_agrees_with_the_checked_one(level: int) -> None:
    """decode_message reads the usual answer without a call per field; whatever that reader accepts
    must come out as the field-by-field reader (with its precise errors) reads it."""
    rng = random.Random(level)
    user = v3.User(b"u", level, "SHA" if level == 3 else "", "AES" if level == 3 else "", b"authpass123",
                   b"privpass123")
    state = v3.EngineState(b"\x80\x00\x1f\x88\x80" + bytes(range(12)), 5, 1000, 0.0)
    accepted = 0
    for rows in (0, 25, 200):  # 200 rows: a message with long-form lengths
        varbinds = b"".join(ber.encode_tlv(0x30, ber.encode_tlv(0x06, ber.encode_oid((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, i)))
                                           + ber.encode_tlv(0x04, b"x" * 30)) for i in range(rows))
        pdu = ber.encode_tlv(ber.RESPONSE, ber.encode_int(42) + ber.encode_int(0) + ber.encode_int(0)
                             + ber.encode_tlv(0x30, varbinds))
        message = v3.encode_message(7, user, state, v3.scoped_pdu(state.engine_id, b"ctx", pdu), 0.0)
        assert v3._decode_usual(message) is not None
        for data in [message, *mutations(message, rng, 1500)]:
            usual = v3._decode_usual(data)
            if usual is None:
                continue
            accepted += 1
            assert usual == v3._decode_checked(data), data.hex()
    assert accepted > 1000


def test_a_forked_worker_draws_its_own_privacy_salts() -> None:
    """Workers fork from one parent: counting on from its salt counters, two workers would send the
    same salt (so the same AES IV within an engine-time second) under one user's key."""
    aes_key, des_key = bytes(range(16)), bytes(range(16, 32))

    def salts() -> bytes:
        return (usm.encrypt("AES", aes_key, 1, 2, b"scoped pdu").salt
                + usm.encrypt("DES", des_key, 1, 2, b"scoped pdu").salt)

    child = in_forked_child(salts)
    parent = salts()  # what the parent draws next, as a sibling forked before the draw would
    assert len(child) == len(parent) == 16
    assert child[:8] != parent[:8]  # AES: 64-bit salts
    assert child[8:] != parent[8:]  # DES: boots, then a 32-bit counter
