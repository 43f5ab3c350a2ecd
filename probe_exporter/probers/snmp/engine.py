"""The process-wide pysnmp engine and one SNMP request/response exchange on it.

We talk to pysnmp's message dispatcher directly instead of through hlapi's `bulk_cmd`:
- hlapi's LCD adds an engine table row per (target, timeout, retries) and never removes it, so an
  exporter probing an open-ended set of targets would grow without bound; here only credentials
  (bounded by the config) are registered, and the target address is passed per request;
- retries are ours, so `snmp_scrape_packets_sent/_retried` are exact and every wait is cut to the
  probe's remaining time (pysnmp's own walk retries forever on timeout);
- no per-varbind MIB resolution or ObjectType wrapping: responses come back as raw pyasn1 pairs.

Since v1/v2c (community.py) and SNMPv3 (v3.py, usm.py) run on our own BER codec, pysnmp serves only
what those do not cover, or everything when the switches below are off (tests compare both paths
value for value).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as engine_config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.proto import errind
from pysnmp.proto.api import v2c
from pysnmp.proto.error import StatusInformation
from pysnmp.proto.proxy import rfc2576

from probe_exporter import logs
from probe_exporter.config.snmp import SnmpAuth
from probe_exporter.probers.snmp import ber, packets, stats, usm, v3, values
from probe_exporter.probers.snmp.community import CommunityTransport

# v1/v2c requests skip pysnmp's dispatcher and pyasn1 (see community.py); off: everything via pysnmp.
FAST_COMMUNITY_PATH = True
# SNMPv3 on our codec (USM in usm.py); off, or for an auth it does not cover: via pysnmp.
FAST_V3_PATH = True
# Agents whose engine ID and clock are remembered (v3 discovery); the oldest is forgotten first.
MAX_ENGINE_STATES = 100_000

_AUTH_PROTOCOLS = {
    "MD5": engine_config.USM_AUTH_HMAC96_MD5,
    "SHA": engine_config.USM_AUTH_HMAC96_SHA,
    "SHA224": engine_config.USM_AUTH_HMAC128_SHA224,
    "SHA256": engine_config.USM_AUTH_HMAC192_SHA256,
    "SHA384": engine_config.USM_AUTH_HMAC256_SHA384,
    "SHA512": engine_config.USM_AUTH_HMAC384_SHA512,
}
# gosnmp's AES192/AES256 extend the key as in draft-blumenthal; the C forms as Cisco (Reeder) do.
_PRIV_PROTOCOLS = {
    "DES": engine_config.USM_PRIV_CBC56_DES,
    "AES": engine_config.USM_PRIV_CFB128_AES,
    "AES192": engine_config.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": engine_config.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": engine_config.USM_PRIV_CFB192_AES,
    "AES256C": engine_config.USM_PRIV_CFB256_AES,
}
_LEVELS = {"noAuthNoPriv": 1, "authNoPriv": 2, "authPriv": 3}
# v3 engine discovery and time sync answer with these reports; they are re-sent, not retried.
_DISCOVERY = (errind.unknownEngineID, errind.notInTimeWindow)
_MAX_DISCOVERY = 4
_NULL = univ.Null("")


class SnmpError(Exception):
    """The exchange with the agent failed; the message is the logged reason (never a secret)."""


class SnmpTimeout(SnmpError):
    pass


@dataclass(frozen=True)
class Security:
    """What a request needs from an auth, after its credentials are registered in the engine."""

    mp_model: int  # 0 = v1, 1 = v2c, 3 = v3
    security_model: int  # 1 = v1, 2 = v2c, 3 = USM
    security_name: bytes  # as pysnmp's tables hold it (a str would not match their keys)
    security_level: int  # 1 noAuthNoPriv, 2 authNoPriv, 3 authPriv: pysnmp compares it as a number
    context_name: bytes
    # v1/v2c only: the community, for the fast request path (community.py); never printed.
    community: bytes | None = field(default=None, repr=False, compare=False)
    # v3 only: the user for the fast USM path (None: pysnmp serves this auth).
    user: v3.User | None = field(default=None, repr=False, compare=False)


@dataclass
class Exchange:
    """Counters of one module's scrape, for the snmp_scrape_* metrics."""

    packets_sent: int = 0
    packets_retried: int = 0
    pdus_returned: int = 0


@dataclass
class Response:
    error_status: int
    error_index: int
    varbinds: list[tuple[tuple[int, ...], values.Value]] = field(default_factory=list)


class Engine:
    """One SnmpEngine for the process (created in the running loop), with registered credentials."""

    def __init__(self) -> None:
        self.snmp = SnmpEngine()
        engine_config.add_transport(self.snmp, udp.DOMAIN_NAME, udp.UdpAsyncioTransport().open_client_mode())
        engine_config.add_transport(self.snmp, udp6.DOMAIN_NAME, udp6.Udp6AsyncioTransport().open_client_mode())
        self._security: dict[tuple[Any, ...], tuple[tuple[Any, ...], Security]] = {}
        self.loop = asyncio.get_running_loop()
        self.community = CommunityTransport()
        self.v3_engines: dict[tuple[Any, ...], v3.EngineState] = {}

    def security(self, auth: SnmpAuth, context_name: str | None = None) -> Security:
        """Register `auth`'s credentials once (a community under a numbered name, never one derived
        from the secret: a digest of a short community would be easy to reverse)."""
        context = (auth.context_name if context_name is None else context_name).encode()
        slot, credentials = _slot(auth)
        registered = self._security.get(slot)
        if registered is None or registered[0] != credentials:
            registered = self._security[slot] = (credentials, self._register(auth, slot, registered is not None))
        base = registered[1]
        if auth.version in (1, 2):  # one registration per community, the version is per request
            mp_model = auth.version - 1
            return Security(mp_model, mp_model + 1, base.security_name, 1, b"", auth.community.reveal().encode())
        if base.context_name == context:
            return base
        return Security(base.mp_model, base.security_model, base.security_name, base.security_level, context,
                        user=base.user)

    def _register(self, auth: SnmpAuth, slot: tuple[Any, ...], replace: bool) -> Security:
        if auth.version in (1, 2):
            name = f"pe-community-{len(self._security)}"
            engine_config.add_v1_system(self.snmp, name, auth.community.reveal(), securityName=name)
            mp_model = auth.version - 1
            return Security(mp_model, mp_model + 1, name.encode(), 1, b"")
        # pysnmp's USM table is indexed by user name: one set of keys per user name at a time.
        if replace:
            engine_config.delete_v3_user(self.snmp, auth.username)
        level = auth.security_level
        auth_protocol = engine_config.USM_AUTH_NONE
        priv_protocol = engine_config.USM_PRIV_NONE
        auth_key = priv_key = None
        if level in ("authNoPriv", "authPriv"):
            auth_protocol, auth_key = _AUTH_PROTOCOLS[auth.auth_protocol], auth.password.reveal()
        if level == "authPriv":
            priv_protocol, priv_key = _PRIV_PROTOCOLS[auth.priv_protocol], auth.priv_password.reveal()
        engine_config.add_v3_user(self.snmp, auth.username, auth_protocol, auth_key, priv_protocol, priv_key)
        user = v3.User.of(auth) if v3.covers(auth) else None
        if user is None:
            logs.log(logging.DEBUG, "SNMPv3 auth served by pysnmp: not covered by the fast path", user=auth.username,
                     security_level=level, auth_protocol=auth.auth_protocol, priv_protocol=auth.priv_protocol)
        return Security(3, 3, auth.username.encode(), _LEVELS[level], b"", user=user)

    def remember_engine(self, address: tuple[Any, ...], state: v3.EngineState) -> None:
        engines = self.v3_engines
        engines.pop(address, None)
        engines[address] = state
        if len(engines) > MAX_ENGINE_STATES:
            del engines[next(iter(engines))]

    def close(self) -> None:
        self.community.close()
        self.snmp.close_dispatcher()


def _slot(auth: SnmpAuth) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(what the engine keys the registration by, the credentials registered there)."""
    if auth.version in (1, 2):
        # pysnmp maps an incoming community back to the first securityName registered for it, so
        # one community has one registration, shared by v1 and v2c requests.
        return ("community", auth.community.reveal()), ()
    return ("usm", auth.username), (auth.security_level, auth.password.reveal(), auth.auth_protocol,
                                    auth.priv_protocol, auth.priv_password.reveal())


class Session:
    """Requests to one agent with one security, bounded by the module's timeout/retries and the deadline."""

    def __init__(self, engine: Engine, domain: tuple[int, ...], address: tuple[Any, ...], security: Security,
                 timeout: float, retries: int, deadline: float, exchange: Exchange,
                 context_engine_id: bytes | None = None, channel: Any = None,
                 packet_log: packets.PacketLog | None = None) -> None:
        self.engine = engine
        # Where requests go: the process's UDP sockets, or a tcp:// target's connection (stream.py).
        self.channel = channel if channel is not None else engine.community
        self.packet_log = packet_log  # --snmp.debug-packets
        self.domain = domain
        self.address = address
        self.security = security
        self.timeout = timeout
        self.retries = retries
        self.deadline = deadline
        self.exchange = exchange
        self.context_engine_id = context_engine_id
        self.version = {0: 1, 1: 2, 3: 3}[security.mp_model]
        self.fast = (FAST_COMMUNITY_PATH and security.community is not None) or (
            FAST_V3_PATH and security.user is not None)
        if channel is not None and not self.fast:
            raise SnmpError("tcp transport: this auth is served by pysnmp, which only speaks UDP here")

    async def get(self, oids: list[tuple[int, ...]]) -> Response:
        if self.fast:
            return await self._fast_request(ber.GET, oids)
        pdu = v2c.GetRequestPDU()
        v2c.apiPDU.set_defaults(pdu)
        v2c.apiPDU.set_varbinds(pdu, [(oid, _NULL) for oid in oids])
        return await self._request(pdu)

    async def get_next(self, oids: list[tuple[int, ...]]) -> Response:
        if self.fast:
            return await self._fast_request(ber.GET_NEXT, oids)
        pdu = v2c.GetNextRequestPDU()
        v2c.apiPDU.set_defaults(pdu)
        v2c.apiPDU.set_varbinds(pdu, [(oid, _NULL) for oid in oids])
        return await self._request(pdu)

    async def get_bulk(self, oids: list[tuple[int, ...]], max_repetitions: int) -> Response:
        if self.fast:
            return await self._fast_request(ber.GET_BULK, oids, max_repetitions)
        pdu = v2c.GetBulkRequestPDU()
        v2c.apiBulkPDU.set_defaults(pdu)
        v2c.apiBulkPDU.set_non_repeaters(pdu, 0)
        v2c.apiBulkPDU.set_max_repetitions(pdu, max_repetitions)
        v2c.apiBulkPDU.set_varbinds(pdu, [(oid, _NULL) for oid in oids])
        return await self._request(pdu)

    def _sent(self, retry: bool) -> None:
        self.exchange.packets_sent += 1
        stats.STATS.packets.inc()
        if retry:
            self.exchange.packets_retried += 1
            stats.STATS.retries.inc()

    async def _fast_request(self, pdu_type: int, oids: list[tuple[int, ...]], max_repetitions: int = 0) -> Response:
        if self.security.user is not None:
            return await self._v3_request(self.security.user, pdu_type, oids, max_repetitions)
        transport = self.engine.community
        request_id = transport.next_request_id()
        assert self.security.community is not None
        data = ber.encode_request(self.security.mp_model, self.security.community, pdu_type, request_id, oids,
                                  max_repetitions)
        parsed = await self._exchange(data, request_id)
        if isinstance(parsed, bytes):  # an SNMPv3 message whose msgID is our request-id
            raise SnmpError("answer to a community request is an SNMPv3 message")
        return Response(parsed[3], parsed[4], parsed[5])

    async def _exchange(self, data: bytes, request_id: int) -> Any:
        """Send `data` until answered, within the module's timeout and retries and the deadline."""
        transport = self.channel
        loop = self.engine.loop
        attempt = 0
        future = None
        packet_log = self.packet_log
        if packet_log is not None:
            transport.taps[request_id] = lambda raw: packets.log_packet(packet_log, "received", self.address, raw)
        try:
            while True:
                remaining = self.deadline - loop.time()
                if remaining <= 0:
                    raise SnmpTimeout("request timeout (deadline reached)")
                wait = min(self.timeout, remaining)
                self._sent(retry=attempt > 0)
                if packet_log is not None:
                    packets.log_packet(packet_log, "sent", self.address, data)
                started = time.perf_counter()
                try:
                    future, parsed = await transport.exchange(data, request_id, self.address, wait, future)
                except OSError as err:
                    raise SnmpError(f"error sending request: {err}") from None
                stats.STATS.packet_duration.observe(time.perf_counter() - started)
                if parsed is not None:
                    return parsed
                if wait < self.timeout:
                    raise SnmpTimeout("request timeout (deadline reached)")
                if attempt >= self.retries:
                    raise SnmpTimeout(f"request timeout (after {attempt} retries)")
                attempt += 1
        finally:
            transport.done(request_id)

    async def _v3_request(self, user: v3.User, pdu_type: int, oids: list[tuple[int, ...]],
                          max_repetitions: int) -> Response:
        """One request under USM: discovery when the agent's engine is not known yet, one resync on
        notInTimeWindows, one rediscovery on unknownEngineID; other reports fail with their reason."""
        transport = self.engine.community
        request_id = transport.next_request_id()
        pdu = ber.encode_pdu(pdu_type, request_id, oids, max_repetitions)
        resynced = rediscovered = False
        while True:
            state = self.engine.v3_engines.get(self.address) or await self._discover()
            msg_id = transport.next_request_id()
            scoped = v3.scoped_pdu(state.engine_id if self.context_engine_id is None else self.context_engine_id,
                                   self.security.context_name, pdu)
            try:
                message = v3.encode_message(msg_id, user, state, scoped, self.engine.loop.time())
            except usm.UsmError as err:
                raise SnmpError(str(err)) from None
            answer = await self._exchange(message, msg_id)
            if not isinstance(answer, bytes):  # a v1/v2c response whose request-id is our msgID
                raise SnmpError("answer to an SNMPv3 request is not an SNMPv3 message")
            incoming, opened = self._open(answer, user, state)
            tag, response_id, error_status, error_index, varbinds = opened
            if tag == ber.REPORT:
                kind, reason = v3.report_kind(varbinds)
                if kind == v3.NOT_IN_TIME_WINDOWS and not resynced:
                    resynced = True
                    state.boots, state.time, state.synced_at = incoming.boots, incoming.time, self.engine.loop.time()
                    continue
                if kind == v3.UNKNOWN_ENGINE_IDS and not rediscovered:
                    rediscovered = True
                    self.engine.v3_engines.pop(self.address, None)
                    continue
                raise SnmpError(reason)
            if tag != ber.RESPONSE:
                raise SnmpError(f"unexpected PDU type 0x{tag:02x} in the answer")
            if user.level >= 2 and not incoming.flags & v3.FLAG_AUTH:
                raise SnmpError("response is not authenticated")
            if response_id != request_id:
                raise SnmpError("response request-id does not match the request")
            return Response(error_status, error_index, varbinds)

    def _open(self, data: bytes, user: v3.User, state: v3.EngineState) -> tuple[v3.Incoming, tuple[Any, ...]]:
        """Authenticate and decrypt a v3 answer; an authentic one keeps the agent's clock current."""
        try:
            incoming = v3.decode_message(data)
            if incoming.flags & v3.FLAG_AUTH:
                if user.level < 2:
                    raise SnmpError("authenticated answer for a user without authentication")
                if incoming.engine_id != state.engine_id:
                    # Not ours to check: keys for a new engine ID cost 1 MB of hashing each.
                    raise SnmpError("authenticated answer from an unexpected engine ID")
                if not v3.authentic(data, incoming, user):
                    raise SnmpError("response failed authentication (wrong auth password or auth protocol)")
                if incoming.engine_id == state.engine_id:
                    state.learn(incoming.boots, incoming.time, self.engine.loop.time())
            opened = v3.open_scoped(incoming, user if incoming.flags & v3.FLAG_AUTH else None)
        except (ber.BerError, IndexError, ValueError) as err:
            raise SnmpError(f"undecodable SNMPv3 answer: {err}") from None
        return incoming, opened[2:]

    async def _discover(self) -> v3.EngineState:
        """RFC 3414 §4: an empty noAuthNoPriv request; the report names the engine and its clock."""
        transport = self.engine.community
        msg_id, request_id = transport.next_request_id(), transport.next_request_id()
        message = v3.encode_message(msg_id, None, None, v3.scoped_pdu(b"", b"", ber.encode_pdu(ber.GET, request_id,
                                                                                                  [])), 0.0)
        data = await self._exchange(message, msg_id)
        if not isinstance(data, bytes):
            raise SnmpError("engine discovery: the answer is not an SNMPv3 message")
        try:
            incoming = v3.decode_message(data)
        except (ber.BerError, IndexError, ValueError) as err:
            raise SnmpError(f"engine discovery: undecodable answer: {err}") from None
        if not incoming.engine_id:
            raise SnmpError("engine discovery: the agent reported no engine ID")
        state = v3.EngineState(incoming.engine_id, incoming.boots, incoming.time, self.engine.loop.time())
        self.engine.remember_engine(self.address, state)
        return state

    async def _request(self, pdu: Any) -> Response:
        sent_pdu = rfc2576.v2_to_v1(pdu) if self.security.mp_model == 0 else pdu
        pdu_version = 0 if self.security.mp_model == 0 else 1
        request_id = int(v2c.apiPDU.get_request_id(pdu))
        loop = self.engine.loop
        attempt = discovery = 0
        while True:
            remaining = self.deadline - loop.time()
            if remaining <= 0:
                raise SnmpTimeout("request timeout (deadline reached)")
            wait = min(self.timeout, remaining)
            future: asyncio.Future[Any] = loop.create_future()
            started = time.perf_counter()
            self._send(sent_pdu, pdu_version, wait, future)
            self._sent(retry=False)
            try:
                status, response = await asyncio.wait_for(future, wait)
            except TimeoutError:
                status, response = errind.requestTimedOut, None
            stats.STATS.packet_duration.observe(time.perf_counter() - started)
            if status is None:
                break
            if status in _DISCOVERY and discovery < _MAX_DISCOVERY:
                discovery += 1
                continue
            if status == errind.requestTimedOut and wait < self.timeout:
                raise SnmpTimeout("request timeout (deadline reached)")
            if status == errind.requestTimedOut and attempt < self.retries:
                attempt += 1
                self.exchange.packets_retried += 1
                stats.STATS.retries.inc()  # counted in packets_sent when re-sent above
                continue
            if status == errind.requestTimedOut:
                raise SnmpTimeout(f"request timeout (after {attempt} retries)")
            raise SnmpError(str(status))
        if self.security.mp_model == 0:
            response = rfc2576.v1_to_v2(response, pdu)
        if int(v2c.apiPDU.get_request_id(response)) != request_id:
            raise SnmpError("response request-id does not match the request")
        error_status = int(v2c.apiPDU.get_error_status(response))
        error_index = int(response.getComponentByPosition(2))
        # getComponent(True) unwraps the value's CHOICE layers down to the typed value.
        decode = values.decode
        varbinds = [(vb[0].asTuple(), decode(vb[1].getComponent(True))) for vb in response.getComponentByPosition(3)]
        return Response(error_status, error_index, varbinds)

    def _send(self, pdu: Any, pdu_version: int, wait: float, future: asyncio.Future[Any]) -> None:
        snmp = self.engine.snmp
        dispatcher = snmp.transport_dispatcher
        ticks = wait / dispatcher.get_timer_resolution()
        security = self.security
        try:
            snmp.message_dispatcher.send_pdu(
                snmp, self.domain, self.address, security.mp_model, security.security_model,
                security.security_name, security.security_level, self.context_engine_id, security.context_name,
                pdu_version, pdu, True, ticks, _on_response, future)
        except StatusInformation as err:
            raise SnmpError(str(err.get("errorIndication", "send failed"))) from None
        except Exception as err:  # pysnmp wraps socket errors in CarrierError with a traceback text
            raise SnmpError(f"error sending request: {str(err).splitlines()[-1][:200]}") from None


def _on_response(snmp: Any, mp_model: Any, security_model: Any, security_name: Any, security_level: Any,
                 context_engine_id: Any, context_name: Any, pdu_version: Any, pdu: Any, status: Any,
                 send_pdu_handle: Any, future: asyncio.Future[Any]) -> None:
    if future.done():  # we stopped waiting (timeout, cancellation); pysnmp expires its side itself
        return
    if status:
        future.set_result((status["errorIndication"], None))
    else:
        future.set_result((None, pdu))


_engine: Engine | None = None


def get_engine() -> Engine:
    """The process's engine, created on first use inside the running loop."""
    global _engine
    if _engine is None or _engine.loop is not asyncio.get_running_loop():
        if _engine is not None:  # made in another loop (a test's): free its sockets
            with contextlib.suppress(RuntimeError):  # that loop may be closed already
                _engine.close()
        _engine = Engine()
    return _engine


async def close_engine() -> None:
    global _engine
    if _engine is not None:
        engine, _engine = _engine, None
        engine.close()
        await asyncio.sleep(0)  # sockets close on the next loop turn
