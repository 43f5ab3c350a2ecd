"""Where the SNMP CPU goes: pysnmp/pyasn1 decoding of real GETBULK responses versus the fast BER
decoder (probe_exporter/probers/snmp/ber.py), with its varbind lists read in Python and by the C
extension (_berfast.c, where it was built), verified varbind-for-varbind.

Records the raw responses of an if_mib walk (84 GETBULK answers, 2,091 varbinds) from snmpsim's
cisco_16_switch recording, then decodes them repeatedly both ways.

    .venv/bin/python bench/snmp/bench_decode.py [--agent 127.0.0.1:PORT]   (default: starts snmpsim)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v2c

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from probe_exporter.probers.snmp import ber, values  # noqa: E402
from tests.probers.snmp import recordings  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

ROOTS = [(1, 3, 6, 1, 2, 1, 2), (1, 3, 6, 1, 2, 1, 31, 1, 1)]


def _request(oid: tuple[int, ...], request_id: int) -> bytes:
    pdu = v2c.GetBulkRequestPDU()
    v2c.apiBulkPDU.set_defaults(pdu)
    v2c.apiBulkPDU.set_request_id(pdu, request_id)
    v2c.apiBulkPDU.set_non_repeaters(pdu, 0)
    v2c.apiBulkPDU.set_max_repetitions(pdu, 25)
    v2c.apiBulkPDU.set_varbinds(pdu, [(oid, v2c.null)])
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, "cisco_16_switch")
    v2c.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def record(host: str, port: int) -> list[bytes]:
    """The raw answers of a GETBULK walk of both if_mib subtrees (blocking socket, one at a time)."""
    responses: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        request_id = 1
        for root in ROOTS:
            oid = root
            while True:
                sock.sendto(_request(oid, request_id), (host, port))
                data = sock.recv(65535)
                request_id += 1
                responses.append(data)
                varbinds = ber.decode_response(data)[5]
                last = varbinds[-1][0]
                if last[:len(root)] != root or varbinds[-1][1][0] == values.END_OF_MIB:
                    break
                oid = last
    return responses


def via_pysnmp(data: bytes) -> list[tuple[tuple[int, ...], values.Value]]:
    message, _ = decoder.decode(data, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(message)
    return [(vb[0].asTuple(), values.decode(vb[1].getComponent(True))) for vb in pdu.getComponentByPosition(3)]


def via_ber(data: bytes) -> list[tuple[tuple[int, ...], values.Value]]:
    return ber.decode_response(data)[5]


def via_ber_python(data: bytes) -> list[tuple[tuple[int, ...], values.Value]]:
    reader, ber._varbinds = ber._varbinds, ber._varbinds_python
    try:
        return ber.decode_response(data)[5]
    finally:
        ber._varbinds = reader


def cpu(function: object, responses: list[bytes], rounds: int) -> float:
    start = time.process_time()
    for _ in range(rounds):
        for data in responses:
            function(data)  # type: ignore[operator]
    return (time.process_time() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", help="host:port of an agent serving community cisco_16_switch")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    agent_process = None
    tmp = None
    if args.agent:
        host, port_text = args.agent.rsplit(":", 1)
        port = int(port_text)
    else:
        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name)
        (root / "data").mkdir()
        (root / "cache").mkdir()
        recordings.write_cisco_16_switch(root / "data")
        host, port = "127.0.0.1", free_port(socket.SOCK_DGRAM)
        agent_process = subprocess.Popen(
            [str(Path(sys.executable).with_name("snmpsim-command-responder")), f"--data-dir={root / 'data'}",
             f"--cache-dir={root / 'cache'}", f"--agent-udpv4-endpoint={host}:{port}", "--logging-method=null"],
            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
    try:
        responses = record(host, port)
    finally:
        if agent_process is not None:
            agent_process.terminate()
            agent_process.wait(5)
        if tmp is not None:
            tmp.cleanup()
    count = sum(len(via_ber(data)) for data in responses)
    mismatches = sum(via_pysnmp(data) != via_ber(data) or via_ber_python(data) != via_ber(data) for data in responses)
    print(f"{len(responses)} responses, {count} varbinds, {sum(map(len, responses))} bytes; "
          f"responses decoded differently: {mismatches}")
    slow = cpu(via_pysnmp, responses, args.rounds)
    print(f"pyasn1 decode + value conversion: {slow * 1000:7.1f} ms per walk, {slow / count * 1e6:6.1f} µs/varbind")
    readers = [("fast BER decoder, Python lists:", via_ber_python)]
    if ber.varbind_reader() == "c":
        readers.append(("fast BER decoder, C lists:", via_ber))
    for label, reader in readers:
        fast = cpu(reader, responses, args.rounds * 10)
        print(f"{label:<33} {fast * 1000:7.1f} ms per walk, {fast / count * 1e6:6.1f} µs/varbind"
              f"  ({slow / fast:.0f}x less CPU)")
    asyncio.set_event_loop(None)


if __name__ == "__main__":
    main()
