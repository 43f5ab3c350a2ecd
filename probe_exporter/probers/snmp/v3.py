"""SNMPv3 messages on our BER codec: the RFC 3412 header, RFC 3414 USM security parameters and the
scoped PDU, authenticated and encrypted by usm.py.

pysnmp's v3 path builds and decodes every field through pyasn1 and its message processing
subsystem (~70% of a v3 scrape's CPU); a v3 message has a fixed shape around the same PDU that
v1/v2c carry, so it is built and read here with the same slicing as ber.py. The request/retry
logic using this is in engine.py (Session); checked field for field against pysnmp's reading in
tests/probers/snmp/test_v3_codec.py.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from probe_exporter.config.snmp import SnmpAuth
from probe_exporter.probers.snmp import ber, usm
from probe_exporter.probers.snmp.values import Value

FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
LEVELS = {"noAuthNoPriv": 1, "authNoPriv": 2, "authPriv": 3}
USM_SECURITY_MODEL = 3
# What we accept back; gosnmp sends the same (the largest UDP payload over IPv4).
MAX_MESSAGE_SIZE = 65507
_MAX_ENGINE_TIME = 2**31 - 1

# usmStats (RFC 3414 §5): the report an agent sends when it refuses a message, by its last arc.
USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
UNSUPPORTED_SEC_LEVELS, NOT_IN_TIME_WINDOWS, UNKNOWN_USER_NAMES = 1, 2, 3
UNKNOWN_ENGINE_IDS, WRONG_DIGESTS, DECRYPTION_ERRORS = 4, 5, 6
REPORT_REASONS = {
    UNSUPPORTED_SEC_LEVELS: "unsupported security level (the agent's user does not allow this level)",
    NOT_IN_TIME_WINDOWS: "not in time window (engine boots/time out of sync)",
    UNKNOWN_USER_NAMES: "unknown user name",
    UNKNOWN_ENGINE_IDS: "unknown engine ID",
    WRONG_DIGESTS: "wrong digest (wrong auth password or auth protocol)",
    DECRYPTION_ERRORS: "decryption error (wrong priv password or priv protocol)",
}


class V3Error(ber.BerError):
    """A v3 message we cannot accept; the text is a logged reason and carries no secret."""


@dataclass(frozen=True)
class User:
    """A USM user as the fast path needs it; the passwords never appear in repr or comparisons."""

    name: bytes
    level: int  # 1 noAuthNoPriv, 2 authNoPriv, 3 authPriv
    auth_protocol: str = ""
    priv_protocol: str = ""
    auth_password: bytes = field(default=b"", repr=False, compare=False)
    priv_password: bytes = field(default=b"", repr=False, compare=False)
    # engine ID -> this user's fixed message parts and localised keys for that engine.
    prepared: dict[bytes, Prepared] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, auth: SnmpAuth) -> User:
        level = LEVELS[auth.security_level]
        return cls(auth.username.encode(), level,
                   auth.auth_protocol if level >= 2 else "", auth.priv_protocol if level == 3 else "",
                   auth.password.reveal().encode() if level >= 2 else b"",
                   auth.priv_password.reveal().encode() if level == 3 else b"")

    def flags(self) -> int:
        return (FLAG_AUTH if self.level >= 2 else 0) | (FLAG_PRIV if self.level == 3 else 0) | FLAG_REPORTABLE

    def for_engine(self, engine_id: bytes) -> Prepared:
        found = self.prepared.get(engine_id)
        if found is None:
            if len(self.prepared) >= _MAX_PREPARED:
                self.prepared.clear()
            found = self.prepared[engine_id] = Prepared.of(self, engine_id)
        return found


# Engines one user's prepared parts are kept for (then they are made again: cheap, keys are cached).
_MAX_PREPARED = 10_000


@dataclass(frozen=True)
class Prepared:
    """What every message of one user to one engine has in common, encoded once."""

    header_tail: bytes  # msgMaxSize, msgFlags, msgSecurityModel
    engine_field: bytes
    user_field: bytes
    mac_field: bytes  # msgAuthenticationParameters as zeros
    auth_key: bytes = field(repr=False)
    priv_key: bytes = field(repr=False)

    @classmethod
    def of(cls, user: User | None, engine_id: bytes) -> Prepared:
        encode_tlv, encode_int = ber.encode_tlv, ber.encode_int
        level = user.level if user is not None else 1
        flags = user.flags() if user is not None else FLAG_REPORTABLE
        auth_key = priv_key = b""
        mac_length = 0
        if user is not None and level >= 2:
            auth_key = usm.auth_key(user.auth_password, user.auth_protocol, engine_id)
            mac_length = usm.mac_length(user.auth_protocol)
        if user is not None and level == 3:
            priv_key = usm.priv_key(user.priv_password, user.auth_protocol, user.priv_protocol, engine_id)
        return cls(encode_int(MAX_MESSAGE_SIZE) + encode_tlv(0x04, bytes((flags,))) + encode_int(USM_SECURITY_MODEL),
                   encode_tlv(0x04, engine_id), encode_tlv(0x04, user.name if user is not None else b""),
                   encode_tlv(0x04, b"\0" * mac_length), auth_key, priv_key)


_DISCOVERY = Prepared.of(None, b"")


def covers(auth: SnmpAuth) -> bool:
    """Whether the fast path implements this auth's protocols (else pysnmp serves it)."""
    level = auth.security_level
    if level not in LEVELS:
        return False
    if level != "noAuthNoPriv" and auth.auth_protocol not in usm.AUTH_PROTOCOLS:
        return False
    return level != "authPriv" or auth.priv_protocol in usm.PRIV_PROTOCOLS


@dataclass
class EngineState:
    """The authoritative engine of one agent: its ID and clock, as last learnt (RFC 3414 §2.3)."""

    engine_id: bytes
    boots: int
    time: int
    synced_at: float  # our monotonic clock when `time` was read

    def time_at(self, now: float) -> int:
        return max(0, min(self.time + int(now - self.synced_at), _MAX_ENGINE_TIME))

    def learn(self, boots: int, engine_time: int, now: float) -> None:
        """An authenticated message's clock (RFC 3414 §3.2.7.b: newer boots, or later time)."""
        if boots > self.boots or (boots == self.boots and engine_time > self.time_at(now)):
            self.boots, self.time, self.synced_at = boots, engine_time, now


def scoped_pdu(context_engine_id: bytes, context_name: bytes, pdu: bytes) -> bytes:
    return ber.encode_tlv(0x30, ber.encode_tlv(0x04, context_engine_id) + ber.encode_tlv(0x04, context_name) + pdu)


def encode_message(msg_id: int, user: User | None, state: EngineState | None, scoped: bytes, now: float) -> bytes:
    """A v3 message; without a user (discovery) it is noAuthNoPriv with an empty engine ID and user."""
    encode_tlv, encode_int = ber.encode_tlv, ber.encode_int
    if user is None or state is None:
        user, prepared, boots, engine_time = None, _DISCOVERY, 0, 0
    else:
        prepared, boots, engine_time = user.for_engine(state.engine_id), state.boots, state.time_at(now)
    if user is not None and user.level == 3:
        encrypted = usm.encrypt(user.priv_protocol, prepared.priv_key, boots, engine_time, scoped)
        scoped_field, priv_field = encode_tlv(0x04, encrypted.data), encode_tlv(0x04, encrypted.salt)
    else:
        scoped_field, priv_field = scoped, b"\x04\x00"
    security = encode_tlv(0x30, prepared.engine_field + encode_int(boots) + encode_int(engine_time)
                          + prepared.user_field + prepared.mac_field + priv_field)
    message = encode_tlv(0x30, b"\x02\x01\x03" + encode_tlv(0x30, encode_int(msg_id) + prepared.header_tail)
                         + encode_tlv(0x04, security) + scoped_field)
    if user is None or user.level < 2:
        return message
    # The MAC is the last field before msgPrivacyParameters: its place counts back from the end.
    mac_length = len(prepared.mac_field) - 2
    offset = len(message) - len(scoped_field) - len(priv_field) - mac_length
    digest = usm.mac(user.auth_protocol, prepared.auth_key, message)
    return message[:offset] + digest + message[offset + mac_length:]


def peek_msg_id(data: bytes) -> int | None:
    """The msgID of a v3 message, or None when `data` is not one (then it may be v1/v2c)."""
    # Every v1/v2c answer: a one-byte version INTEGER other than 3 right after the outer header.
    if len(data) > 6 and data[0] == 0x30:
        version_at = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
        if data[version_at:version_at + 2] == b"\x02\x01" and data[version_at + 2:version_at + 3] != b"\x03":
            return None
    return msg_id_by_fields(data)


def msg_id_by_fields(data: bytes) -> int | None:
    """peek_msg_id read field by field (the outer SEQUENCE, the version, the header's msgID)."""
    tag, pos, _ = ber.tlv(data, 0)
    if tag != 0x30:
        return None
    tag, start, stop = ber.tlv(data, pos)
    if tag != 0x02 or ber.signed(data[start:stop]) != 3:
        return None
    _, pos, _ = ber.tlv(data, stop)
    tag, start, stop = ber.tlv(data, pos)
    return ber.signed(data[start:stop]) if tag == 0x02 else None


@dataclass
class Incoming:
    """A v3 message as received, before authentication and decryption."""

    msg_id: int
    flags: int
    engine_id: bytes
    boots: int
    time: int
    user_name: bytes
    auth_params: bytes
    priv_params: bytes
    mac_offset: int  # where msgAuthenticationParameters' content starts in the raw message
    scoped: bytes  # the encrypted octets (FLAG_PRIV) or the plaintext scoped PDU TLV


def _field(data: bytes, pos: int, tag: int, what: str) -> tuple[int, int]:
    found, start, stop = ber.tlv(data, pos)
    if found != tag:
        raise V3Error(f"malformed SNMPv3 message ({what})")
    return start, stop


def decode_message(data: bytes) -> Incoming:
    usual = _decode_usual(data)
    return usual if usual is not None else _decode_checked(data)


def _short(data: bytes, pos: int, tag: int, limit: int) -> int:
    """The end of the short-form TLV at `pos` (content from pos + 2), or -1 when it is not one that
    ends within `limit`."""
    if data[pos] != tag:
        return -1
    end = pos + 2 + data[pos + 1]
    return end if data[pos + 1] < 0x80 and end <= limit else -1


_VERSION_3 = b"\x02\x01\x03"  # INTEGER 3: the version, and the USM security model


def _decode_usual(data: bytes) -> Incoming | None:
    """An answer in the shape agents send (short-form lengths in the header, minimal integers), read
    field after field without a call per TLV. None for any other shape: _decode_checked then reads it,
    and names what is wrong. Whatever this accepts, _decode_checked accepts the same way."""
    try:
        if data[0] != 0x30:
            return None
        first = data[1]
        pos = 2 if first < 0x80 else 2 + (first & 0x7F)
        end = pos + (first if first < 0x80 else int.from_bytes(data[2:pos], "big"))
        size = len(data)
        if end > size or data[pos:pos + 3] != _VERSION_3:
            return None
        header_end = _short(data, pos + 3, 0x30, end)
        pos += 5
        id_end = _short(data, pos, 0x02, header_end)
        if id_end < 0:
            return None
        msg_id = int.from_bytes(data[pos + 2:id_end], "big", signed=True)
        pos = _short(data, id_end, 0x02, header_end)  # msgMaxSize
        if pos < 0 or data[pos:pos + 2] != b"\x04\x01" or data[pos + 3:pos + 6] != _VERSION_3 or pos + 6 != header_end:
            return None
        flags = data[pos + 2]
        security_end = _short(data, header_end, 0x04, end)
        if security_end < 0 or _short(data, header_end + 2, 0x30, security_end) != security_end:
            return None
        pos = header_end + 4
        fields = []
        for tag in (0x04, 0x02, 0x02, 0x04, 0x04, 0x04):
            stop = _short(data, pos, tag, security_end)
            if stop < 0:
                return None
            fields.append(pos + 2)
            fields.append(stop)
            pos = stop
        if flags & FLAG_PRIV:
            if data[security_end] != 0x04:
                return None
            length = data[security_end + 1]
            start = security_end + 2
            if length >= 0x80:
                count = length & 0x7F
                if not 0 < count <= 4:
                    return None
                length = int.from_bytes(data[start:start + count], "big")
                start += count
            if start + length > size:
                return None
            scoped = data[start:start + length]
        else:
            if data[security_end] != 0x30:
                return None
            _, start, stop = ber.tlv(data, security_end)
            scoped = data[security_end:stop]
    except (IndexError, ber.BerError):
        return None
    integer = int.from_bytes
    return Incoming(msg_id, flags, data[fields[0]:fields[1]], integer(data[fields[2]:fields[3]], "big", signed=True),
                    integer(data[fields[4]:fields[5]], "big", signed=True), data[fields[6]:fields[7]],
                    data[fields[8]:fields[9]], data[fields[10]:fields[11]], fields[8], scoped)


def _decode_checked(data: bytes) -> Incoming:
    tag, pos, end = ber.tlv(data, 0)
    if tag != 0x30:
        raise V3Error("malformed SNMPv3 message (not a SEQUENCE)")
    start, stop = _field(data, pos, 0x02, "version")
    if ber.signed(data[start:stop]) != 3:
        raise V3Error("not an SNMPv3 message")
    header_start, header_end = _field(data, stop, 0x30, "header")
    fields = []
    pos = header_start
    for tag, what in ((0x02, "msgID"), (0x02, "msgMaxSize"), (0x04, "msgFlags"), (0x02, "msgSecurityModel")):
        start, pos = _field(data, pos, tag, what)
        fields.append(data[start:pos])
    if ber.signed(fields[3]) != USM_SECURITY_MODEL:
        raise V3Error("SNMPv3 message uses a security model other than USM")
    if len(fields[2]) != 1:
        raise V3Error("malformed SNMPv3 message (msgFlags)")
    security_start, security_end = _field(data, header_end, 0x04, "security parameters")
    pos, _ = _field(data, security_start, 0x30, "security parameters")
    usm_fields = []
    mac_offset = 0
    for index, (tag, what) in enumerate(((0x04, "engine ID"), (0x02, "engine boots"), (0x02, "engine time"),
                                          (0x04, "user name"), (0x04, "auth parameters"),
                                          (0x04, "priv parameters"))):
        start, pos = _field(data, pos, tag, what)
        if index == 4:
            mac_offset = start
        usm_fields.append(data[start:pos])
    if security_end > end:
        raise V3Error("malformed SNMPv3 message (length)")
    flags = fields[2][0]
    if flags & FLAG_PRIV:
        start, stop = _field(data, security_end, 0x04, "encrypted PDU")
        scoped = data[start:stop]
    else:
        _, _, stop = ber.tlv(data, security_end)
        scoped = data[security_end:stop]
    return Incoming(ber.signed(fields[0]), flags, usm_fields[0], ber.signed(usm_fields[1]),
                    ber.signed(usm_fields[2]), usm_fields[3], usm_fields[4], usm_fields[5], mac_offset, scoped)


def authentic(data: bytes, incoming: Incoming, user: User) -> bool:
    """Whether the message's MAC is the one our localised key gives (compared in constant time)."""
    length = usm.mac_length(user.auth_protocol)
    if len(incoming.auth_params) != length:
        return False
    offset = incoming.mac_offset
    zeroed = data[:offset] + b"\0" * length + data[offset + length:]
    key = user.for_engine(incoming.engine_id).auth_key
    return hmac.compare_digest(usm.mac(user.auth_protocol, key, zeroed), incoming.auth_params)


def open_scoped(incoming: Incoming, user: User | None) -> tuple[bytes, bytes, int, int, int, int,
                                                                  list[tuple[tuple[int, ...], Value]]]:
    """(context engine ID, context name, PDU tag, request-id, error-status, error-index, varbinds)."""
    scoped = incoming.scoped
    if incoming.flags & FLAG_PRIV:
        if user is None or user.level < 3:
            raise V3Error("encrypted SNMPv3 message for a user without privacy")
        try:
            key = user.for_engine(incoming.engine_id).priv_key
            scoped = usm.decrypt(user.priv_protocol, key, incoming.boots, incoming.time, incoming.priv_params,
                                 scoped)
        except (usm.UsmError, ValueError) as err:
            raise V3Error(f"decryption error: {type(err).__name__}") from None
    tag, pos, end = ber.tlv(scoped, 0)
    if tag != 0x30:
        raise V3Error("decryption error (the scoped PDU is not a SEQUENCE)" if incoming.flags & FLAG_PRIV
                      else "malformed SNMPv3 message (scoped PDU)")
    start, stop = _field(scoped, pos, 0x04, "context engine ID")
    context_engine_id = scoped[start:stop]
    start, stop = _field(scoped, stop, 0x04, "context name")
    context_name = scoped[start:stop]
    if stop >= end:
        raise V3Error("malformed SNMPv3 message (no PDU)")
    pdu_tag, request_id, error_status, error_index, varbinds = ber.decode_pdu(scoped[:end], stop)
    return context_engine_id, context_name, pdu_tag, request_id, error_status, error_index, varbinds


def report_kind(varbinds: list[tuple[tuple[int, ...], Value]]) -> tuple[int, str]:
    """(usmStats arc or 0, reason) of a Report PDU."""
    if not varbinds:
        return 0, "report from the agent without a varbind"
    oid = varbinds[0][0]
    if len(oid) > len(USM_STATS) and oid[:len(USM_STATS)] == USM_STATS and oid[len(USM_STATS)] in REPORT_REASONS:
        return oid[len(USM_STATS)], REPORT_REASONS[oid[len(USM_STATS)]]
    return 0, "report from the agent: " + ".".join(map(str, oid))
