# ruff: noqa: E501  (the type-coverage recording and module are kept verbatim from the reference spec)
"""Real SNMP agents for the SNMP prober tests, all on 127.0.0.1 high ports, started once per session.

- snmpsim (PyPI) serving recorded data: cisco_16_switch (59 interfaces; ifTable, ifXTable and the
  system group of snmpsim's own recording) and `types`, the type-coverage recording of the
  reference spec (§4.4). The community is the data file's stem.
- net-snmp snmpd with SNMPv3 users for every auth/priv protocol pair we test.
- `hostile_agent`: a small asyncio UDP agent that answers with what a test tells it to (OIDs
  going backwards, an endless table, silence after N answers).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.probers.snmp import agents, recordings
from tests.support.ports import free_port

# The type-coverage recording, line for line as in the reference spec §4.4.
TYPES_SNMPREC = """\
1.3.6.1.4.1.99999.1.1|2|-5
1.3.6.1.4.1.99999.1.2|70|9007199254740997
1.3.6.1.4.1.99999.1.3|70|18446744073709551615
1.3.6.1.4.1.99999.1.4|64|10.1.2.3
1.3.6.1.4.1.99999.1.5|4x|00ff10
1.3.6.1.4.1.99999.1.6|4|
1.3.6.1.4.1.99999.1.7|4|hello "q" \\ back
1.3.6.1.4.1.99999.1.8|6|1.3.6.1.4.1.9
1.3.6.1.4.1.99999.1.9|4x|0016c7026e83aabb
1.3.6.1.4.1.99999.1.10|4x|07e8031e0c22380a
1.3.6.1.4.1.99999.1.11|2|2
1.3.6.1.4.1.99999.1.12|2|7
1.3.6.1.4.1.99999.1.13|4x|c001
1.3.6.1.4.1.99999.1.14|4|Temp: 42.5 C
1.3.6.1.4.1.99999.1.15|67|12345
1.3.6.1.4.1.99999.1.16|4|42
1.3.6.1.4.1.99999.1.17|66|4294967295
1.3.6.1.4.1.99999.1.18|65|4294967295
1.3.6.1.4.1.99999.1.19|4x|07e8031e0c22380a2b0530
1.3.6.1.4.1.99999.3.1.2.1.4.10.0.0.1|2|11
1.3.6.1.4.1.99999.4.1.2.3.102.111.111|2|12
1.3.6.1.4.1.99999.5.1.2.1.2|2|13
1.3.6.1.4.1.99999.6.1.2.0.22.199.2.110.131|2|14
1.3.6.1.4.1.99999.7.1.2.1|2|15
1.3.6.1.4.1.99999.7.1.2.5|2|16
1.3.6.1.4.1.99999.8.1.2.1|2|17
1.3.6.1.4.1.99999.8.1.2.2|2|18
1.3.6.1.4.1.99999.8.1.3.1|4|row-one
1.3.6.1.4.1.99999.9.1.2.98.97.114|2|19
"""

# The module of §4.4, in new-format terms.
TYPES_MODULE = r"""
  types:
    walk: [1.3.6.1.4.1.99999]
    metrics:
    - {name: tGaugeNeg, oid: 1.3.6.1.4.1.99999.1.1, type: gauge, help: neg int}
    - {name: tC64wrap, oid: 1.3.6.1.4.1.99999.1.2, type: counter, help: c64 2^53+5}
    - {name: tC64max, oid: 1.3.6.1.4.1.99999.1.3, type: counter, help: c64 max}
    - {name: tIp, oid: 1.3.6.1.4.1.99999.1.4, type: InetAddressIPv4, help: ipaddr}
    - {name: tOct, oid: 1.3.6.1.4.1.99999.1.5, type: OctetString, help: octet}
    - {name: tOctEmpty, oid: 1.3.6.1.4.1.99999.1.6, type: OctetString, help: empty octet}
    - {name: tDisp, oid: 1.3.6.1.4.1.99999.1.7, type: DisplayString, help: "display with \\ and \"quotes\""}
    - {name: tOidVal, oid: 1.3.6.1.4.1.99999.1.8, type: DisplayString, help: oid value}
    - {name: tPhys8, oid: 1.3.6.1.4.1.99999.1.9, type: PhysAddress48, help: 8 byte mac}
    - {name: tDate, oid: 1.3.6.1.4.1.99999.1.10, type: DateAndTime, help: date8}
    - {name: tState, oid: 1.3.6.1.4.1.99999.1.11, type: EnumAsStateSet, help: stateset, enum_values: {1: up, 2: down, 3: testing}}
    - {name: tInfo, oid: 1.3.6.1.4.1.99999.1.12, type: EnumAsInfo, help: info, enum_values: {1: one, 2: two}}
    - {name: tBits, oid: 1.3.6.1.4.1.99999.1.13, type: Bits, help: bits, enum_values: {0: a, 1: b, 2: c, 15: p, 20: beyond}}
    - name: tRegex
      oid: 1.3.6.1.4.1.99999.1.14
      type: DisplayString
      help: regex
      regex_extracts:
        Temp: [{regex: '.*?([0-9.]+).*', value: '$1'}]
        Status: [{regex: 'Nope', value: '5'}, {regex: 'Temp.*', value: '1'}]
        Unanchored: [{regex: '42', value: '1'}]
    - {name: tTicks, oid: 1.3.6.1.4.1.99999.1.15, type: gauge, help: ticks}
    - {name: tGaugeFromStr, oid: 1.3.6.1.4.1.99999.1.16, type: gauge, help: gauge with octetstring value}
    - {name: tGauge32max, oid: 1.3.6.1.4.1.99999.1.17, type: gauge, help: g32 max}
    - {name: tC32max, oid: 1.3.6.1.4.1.99999.1.18, type: counter, help: c32 max}
    - {name: tDateTz, oid: 1.3.6.1.4.1.99999.1.19, type: DateAndTime, help: date11}
    - {name: tIdxInet, oid: 1.3.6.1.4.1.99999.3.1.2, type: gauge, help: inet index, indexes: [{labelname: addr, type: InetAddress}]}
    - {name: tIdxDisp, oid: 1.3.6.1.4.1.99999.4.1.2, type: gauge, help: displaystring index, indexes: [{labelname: name, type: DisplayString}]}
    - {name: tIdxOctFixed, oid: 1.3.6.1.4.1.99999.5.1.2, type: gauge, help: fixed octet index, indexes: [{labelname: blob, type: OctetString, fixed_size: 2}]}
    - {name: tIdxMac, oid: 1.3.6.1.4.1.99999.6.1.2, type: gauge, help: mac index, indexes: [{labelname: mac, type: PhysAddress48}]}
    - {name: tIdxEnum, oid: 1.3.6.1.4.1.99999.7.1.2, type: gauge, help: enum index, indexes: [{labelname: kind, type: EnumAsInfo, enum_values: {1: foo}}]}
    - name: tIdxLookup
      oid: 1.3.6.1.4.1.99999.8.1.2
      type: gauge
      help: lookup
      indexes: [{labelname: rowIndex, type: gauge}]
      lookups:
      - {labels: [rowIndex], labelname: rowName, oid: 1.3.6.1.4.1.99999.8.1.3, type: DisplayString}
      - {labels: [rowIndex], labelname: rowMissing, oid: 1.3.6.1.4.1.99999.8.1.4, type: DisplayString}
    - {name: tIdxImplied, oid: 1.3.6.1.4.1.99999.9.1.2, type: gauge, help: implied, indexes: [{labelname: iname, type: DisplayString, implied: true}]}
  clash:
    walk: [1.3.6.1.4.1.99999.1.1, 1.3.6.1.4.1.99999.1.15]
    metrics:
    - {name: tSame, oid: 1.3.6.1.4.1.99999.1.1, type: gauge, help: same name}
    - {name: tSame, oid: 1.3.6.1.4.1.99999.1.15, type: gauge, help: same name}
  filtered:
    walk: [1.3.6.1.2.1.2.2.1.10]
    filters:
    - {oid: 1.3.6.1.2.1.2.2.1.7, targets: [1.3.6.1.2.1.2.2.1.10], values: ["1"]}
    metrics:
    - {name: ifInOctets, oid: 1.3.6.1.2.1.2.2.1.10, type: counter, help: in octets, indexes: [{labelname: ifIndex, type: gauge}]}
  filtered_and:
    walk: [1.3.6.1.2.1.2.2.1.10]
    filters:
    - {oid: 1.3.6.1.2.1.2.2.1.7, targets: [1.3.6.1.2.1.2.2.1.10], values: ["1"]}
    - {oid: 1.3.6.1.2.1.2.2.1.8, targets: [1.3.6.1.2.1.2.2.1.10], values: ["^1$"]}
    metrics:
    - {name: ifInOctets, oid: 1.3.6.1.2.1.2.2.1.10, type: counter, help: in octets, indexes: [{labelname: ifIndex, type: gauge}]}
  if_octets:
    walk: [1.3.6.1.2.1.2.2.1.10, 1.3.6.1.2.1.31.1.1.1.6]
    metrics:
    - {name: ifInOctets, oid: 1.3.6.1.2.1.2.2.1.10, type: counter, help: in octets, indexes: [{labelname: ifIndex, type: gauge}]}
    - {name: ifHCInOctets, oid: 1.3.6.1.2.1.31.1.1.1.6, type: counter, help: hc in octets, indexes: [{labelname: ifIndex, type: gauge}]}
"""

V3_USERS = {
    # name: (security_level, auth_protocol, password, priv_protocol, priv_password)
    "v3sha_aes": ("authPriv", "SHA", "authpass123", "AES", "privpass123"),
    "v3md5_des": ("authPriv", "MD5", "authpass123", "DES", "privpass123"),
    "v3sha256": ("authNoPriv", "SHA256", "authpass123", "", ""),
    "v3sha512_aes": ("authPriv", "SHA512", "authpass123", "AES", "privpass123"),
    "v3sha224_aes192": ("authPriv", "SHA224", "authpass123", "AES192", "privpass123"),
    "v3sha384_aes256": ("authPriv", "SHA384", "authpass123", "AES256", "privpass123"),
    "v3noauth": ("noAuthNoPriv", "", "", "", ""),
}
# Every auth x priv pair snmp_exporter accepts; net-snmp 5.9 has them all, the Reeder "C" forms too.
V3_MATRIX = {
    f"m_{auth.lower()}_{(priv or 'nopriv').lower()}": (
        "authPriv" if priv else "authNoPriv", auth, "authpass123", priv, "privpass123" if priv else "")
    for auth in ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
    for priv in ("", "DES", "AES", "AES192", "AES256", "AES192C", "AES256C")
}
SNMPD_USERS = {**V3_USERS, **V3_MATRIX}


@pytest.fixture(scope="session")
def snmpsim_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """snmpsim serving cisco_16_switch and types; yields `127.0.0.1:PORT`."""
    if not agents.SNMPSIM.exists():
        pytest.skip("snmpsim is not installed (pip install snmpsim pysmi)")
    with agents.running_snmpsim(tmp_path_factory.mktemp("snmpsim"), {"types": TYPES_SNMPREC}) as target:
        yield target


@pytest.fixture(scope="session")
def snmpd_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """net-snmp's snmpd with the V3_USERS (and community `public`); yields `127.0.0.1:PORT`."""
    snmpd = shutil.which("snmpd") or ("/usr/sbin/snmpd" if Path("/usr/sbin/snmpd").exists() else None)
    if snmpd is None:
        pytest.skip("snmpd is not installed (apt-get install snmpd)")
    root = tmp_path_factory.mktemp("snmpd")
    port = free_port(socket.SOCK_DGRAM)
    lines = ["rocommunity public 127.0.0.1", "sysName snmpd-under-test", "sysLocation test-lab"]
    for user, (level, auth, password, priv, priv_password) in SNMPD_USERS.items():
        if level == "noAuthNoPriv":
            lines.append(f"createUser {user}")
            lines.append(f"rouser {user} noauth")
        elif level == "authNoPriv":
            lines.append(f"createUser {user} {auth} {password}")
            lines.append(f"rouser {user} auth")
        else:
            lines.append(f"createUser {user} {auth} {password} {priv} {priv_password}")
            lines.append(f"rouser {user} priv")
    conf = root / "snmpd.conf"
    conf.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(root / "persist"), "MIBS": ""}
    with agents.running_agent([snmpd, "-f", "-Lf", str(root / "snmpd.log"), "-C", "-c", str(conf), "-p",
                         str(root / "snmpd.pid"), "-M", "/nonexistent", f"udp:127.0.0.1:{port}"],
                        env, port, "public", "snmpd") as target:
        yield target


@pytest.fixture(scope="session")
def shared_snmp_yml() -> Path:
    """snmp_exporter's generated snmp.yml (main at 1d54f35, 53 modules), unmodified."""
    return recordings.shared_snmp_yml()


@pytest.fixture(scope="session")
def test_auths_yml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Auths for the recordings and the snmpd users, plus the type-coverage module."""
    lines = ["auths:",
             "  cisco: {community: cisco_16_switch, version: 2}",
             "  cisco_v1: {community: cisco_16_switch, version: 1}",
             "  types: {community: types, version: 2}",
             "  wrong: {community: not-the-community, version: 2}",
             "  snmpd_public: {community: public, version: 2}"]
    for user, (level, auth, password, priv, priv_password) in SNMPD_USERS.items():
        fields = [f"username: {user}", "version: 3", f"security_level: {level}"]
        if auth:
            fields += [f"auth_protocol: {auth}", f"password: {password}"]
        if priv:
            fields += [f"priv_protocol: {priv}", f"priv_password: {priv_password}"]
        lines.append(f"  {user}: {{{', '.join(fields)}}}")
    lines.append("  v3_wrong_password: {username: v3sha_aes, version: 3, security_level: authPriv, "
                 "auth_protocol: SHA, password: not-the-password, priv_protocol: AES, priv_password: privpass123}")
    lines.append("  v3_unknown_user: {username: nobody-here, version: 3, security_level: authNoPriv, "
                 "auth_protocol: SHA, password: authpass123}")
    # snmpd's v3sha256 is an authNoPriv user: asking for privacy is an unsupported level there.
    lines.append("  v3_unsupported_level: {username: v3sha256, version: 3, security_level: authPriv, "
                 "auth_protocol: SHA256, password: authpass123, priv_protocol: AES, priv_password: privpass123}")
    lines.append("modules:")
    path = tmp_path_factory.mktemp("snmpauth") / "test.yml"
    path.write_text("\n".join(lines) + TYPES_MODULE)
    return path


# --- a hostile agent ---------------------------------------------------------------------------------


@dataclass
class HostileAgent:
    """Answers v2c GET/GETNEXT/GETBULK with `respond(oid, max_repetitions) -> [(oid, value)]`;
    None means no answer. `answers` limits how many requests get one."""

    respond: Callable[[tuple[int, ...], int], list[tuple[tuple[int, ...], Any]] | None]
    answers: int | None = None
    requests: int = 0
    address: str = ""
    transport: Any = field(default=None, repr=False)


class _AgentProtocol(asyncio.DatagramProtocol):
    def __init__(self, agent: HostileAgent) -> None:
        self.agent = agent
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        from pyasn1.codec.ber import decoder, encoder
        from pysnmp.proto.api import v2c

        self.agent.requests += 1
        if self.agent.answers is not None and self.agent.requests > self.agent.answers:
            return
        message, _ = decoder.decode(data, asn1Spec=v2c.Message())
        request = v2c.apiMessage.get_pdu(message)
        oid = tuple(v2c.apiPDU.get_varbinds(request)[0][0])
        repetitions = int(request.getComponentByPosition(2)) if request.tagSet == v2c.GetBulkRequestPDU.tagSet else 1
        varbinds = self.agent.respond(oid, repetitions)
        if varbinds is None:
            return
        response = v2c.apiPDU.get_response(request)
        v2c.apiPDU.set_varbinds(response, varbinds)
        v2c.apiMessage.set_pdu(message, response)
        assert self.transport is not None
        self.transport.sendto(encoder.encode(message), addr)


@pytest.fixture
async def hostile_agent() -> AsyncIterator[Callable[..., HostileAgent]]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(respond: Callable[..., Any], answers: int | None = None) -> HostileAgent:
        agent = HostileAgent(respond, answers)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _AgentProtocol(agent),
                                                           local_addr=("127.0.0.1", 0))
        transports.append(transport)  # type: ignore[arg-type]
        agent.address = f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
        return agent

    yield start  # type: ignore[misc]
    for transport in transports:
        transport.close()
