"""The fast v1/v2c BER codec against pysnmp's own encoder and decoder, value type by value type."""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v1, v2c

from probe_exporter.config import Config, load_config
from probe_exporter.exposition import collect_sorted, render_text
from probe_exporter.pipeline import run_probe
from probe_exporter.probers.snmp import ber, engine, values
from tests.probers.snmp.differential import varbind_reader  # noqa: F401  (autouse: both readers)

VALUES: list[Any] = [
    rfc1902.Integer32(-5), rfc1902.Integer32(2147483647), rfc1902.Integer32(0),
    rfc1902.OctetString(b""), rfc1902.OctetString(b"\x00\xff hello"), rfc1902.OctetString(b"x" * 300),
    rfc1902.ObjectIdentifier((1, 3, 6, 1, 4, 1, 9, 4294967295)), rfc1902.IpAddress("10.1.2.3"),
    rfc1902.Counter32(4294967295), rfc1902.Gauge32(0), rfc1902.Unsigned32(7), rfc1902.TimeTicks(12345),
    rfc1902.Counter64(18446744073709551615), rfc1902.Counter64(0),
    rfc1902.Opaque(b"\x9f\x78\x04" + struct.pack(">f", 0.46)), rfc1902.Opaque(b"\x9f\x79\x08" + struct.pack(">d", 1.5)),
    rfc1902.Opaque(b"\x01\x02"), v2c.null, rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView,
]
OIDS = [(1, 3, 6, 1, 2, 1, 2, 2, 1, 10, n) for n in (1, 127, 128, 16383, 16384, 4294967295)]


def _response(varbinds: list[tuple[tuple[int, ...], Any]], error_status: int = 0, api: Any = v2c) -> bytes:
    pdu = api.GetResponsePDU() if api is v1 else api.ResponsePDU()
    api.apiPDU.set_defaults(pdu)
    api.apiPDU.set_request_id(pdu, 123456)
    api.apiPDU.set_error_status(pdu, error_status)
    api.apiPDU.set_varbinds(pdu, varbinds)
    message = api.Message()
    api.apiMessage.set_defaults(message)
    api.apiMessage.set_community(message, "c")
    api.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def _pysnmp_view(data: bytes) -> list[tuple[tuple[int, ...], values.Value]]:
    message, _ = decoder.decode(data, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(message)
    return [(vb[0].asTuple(), values.decode(vb[1].getComponent(True))) for vb in pdu.getComponentByPosition(3)]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_every_value_type_decodes_as_pysnmp_does(value: Any) -> None:
    data = _response([(oid, value) for oid in OIDS])
    version, community, request_id, error_status, _, varbinds = ber.decode_response(data)
    assert (version, community, request_id, error_status) == (1, b"c", 123456, 0)
    assert varbinds == _pysnmp_view(data)


def test_v1_response_with_error_status() -> None:
    data = _response([(OIDS[0], rfc1902.Integer32(1))], error_status=2, api=v1)
    version, _, _, error_status, _, varbinds = ber.decode_response(data)
    assert (version, error_status) == (0, 2)
    assert varbinds == [(OIDS[0], (values.INTEGER, 1))]


@pytest.mark.parametrize(("pdu_type", "api_class"), [(ber.GET, "GetRequestPDU"), (ber.GET_NEXT, "GetNextRequestPDU"),
                                                     (ber.GET_BULK, "GetBulkRequestPDU")])
def test_requests_encode_as_pysnmp_does(pdu_type: int, api_class: str) -> None:
    pdu = getattr(v2c, api_class)()
    api = v2c.apiBulkPDU if pdu_type == ber.GET_BULK else v2c.apiPDU
    api.set_defaults(pdu)
    api.set_request_id(pdu, 99)
    if pdu_type == ber.GET_BULK:
        api.set_non_repeaters(pdu, 0)
        api.set_max_repetitions(pdu, 25)
    api.set_varbinds(pdu, [(oid, v2c.null) for oid in OIDS])
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, "secret")
    v2c.apiMessage.set_pdu(message, pdu)
    expected = bytes(encoder.encode(message))
    assert ber.encode_request(1, b"secret", pdu_type, 99, OIDS, 25 if pdu_type == ber.GET_BULK else 0) == expected


def test_oids_and_integers_encode_as_pysnmp_does() -> None:
    """Both branches of encode_oid (one byte an arc, and arcs of several bytes) and encode_int's sizes."""
    rng = random.Random(7)
    oids = [(1, 3), (2, 47), (2, 48), (1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 127), (1, 3, 6, 128), (2, 100, 3)]
    oids += [(1, 3, *(rng.choice((0, 1, 127, 128, 255, 16383, 16384, 2**32 - 1)) for _ in range(rng.randrange(8))))
             for _ in range(300)]
    for oid in oids:
        assert ber.encode_tlv(0x06, ber.encode_oid(oid)) == bytes(encoder.encode(univ.ObjectIdentifier(oid))), oid
        assert ber.decode_oid(ber.encode_oid(oid)) == oid
    for value in (0, 1, -1, 127, 128, -128, -129, 255, 256, 2**31 - 1, -(2**31), 2**63):
        assert ber.encode_int(value) == bytes(encoder.encode(univ.Integer(value))), value


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x03\x02\x01", b"\x04\x00", b"\x30\x05\x02\x01\x01\x04\x00"])
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises((ber.BerError, IndexError)):
        ber.decode_response(data)


def _with_raw_oid(raw_oid: bytes) -> bytes:
    """A v2c response (request-id 123456) with one varbind: OID content `raw_oid`, INTEGER 1."""
    def tlv(tag: int, content: bytes) -> bytes:
        return bytes((tag,)) + ber._encode_length(len(content)) + content

    varbind = tlv(0x30, tlv(0x06, raw_oid) + b"\x02\x01\x01")
    pdu = tlv(0xA2, b"\x02\x03\x01\xe2\x40" + b"\x02\x01\x00" * 2 + tlv(0x30, varbind))
    return tlv(0x30, b"\x02\x01\x01" + tlv(0x04, b"c") + pdu)


def test_oid_arcs_are_bounded_as_gosnmp_bounds_them() -> None:
    # A hostile agent's 60 kB arc would take quadratic time to decode, on the event loop.
    with pytest.raises(ber.BerError, match="OID arc too large"):
        ber.decode_response(_with_raw_oid(b"\x2b" + b"\xff" * 60000 + b"\x7f"))
    with pytest.raises(ber.BerError, match="truncated OID"):
        ber.decode_response(_with_raw_oid(b"\x2b\x06\x81"))
    largest = ber.encode_oid((1, 3, 6, 4294967295))
    assert ber.decode_response(_with_raw_oid(largest))[5] == [((1, 3, 6, 4294967295), (values.INTEGER, 1))]


@pytest.fixture(scope="module")
def config(shared_snmp_yml: Path, test_auths_yml: Path) -> Config:
    return load_config([str(shared_snmp_yml), str(test_auths_yml)])


@pytest.mark.parametrize(("module", "auth"), [("types", "types"), ("if_mib", "cisco"), ("if_octets", "cisco_v1")])
async def test_fast_path_and_pysnmp_path_render_the_same(config: Config, snmpsim_agent: str, module: str,
                                                         auth: str, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = []
    for fast in (True, False):
        monkeypatch.setattr(engine, "FAST_COMMUNITY_PATH", fast)
        outcome = await run_probe(module, config.modules[module], snmpsim_agent, 20, {"auth": auth}, config)
        assert outcome.success, outcome.log.text()
        text = render_text(collect_sorted([outcome.metrics])).decode()
        outputs.append([line for line in text.splitlines() if "duration_seconds" not in line])
    assert outputs[0] == outputs[1]


def test_unknown_value_type_is_counted_not_fatal() -> None:
    from probe_exporter.probers.snmp.stats import STATS

    before = STATS.unexpected_pdu_type._value.get()
    # NsapAddress (application 5) is not an SMIv2 type: the response stays readable.
    data = bytes.fromhex("301f020101040163a217020100020100020100300c300a060"
                         "32b06014503010203")
    *_, varbinds = ber.decode_response(data)
    assert varbinds == [((1, 3, 6, 1), (values.NULL, None))]
    assert STATS.unexpected_pdu_type._value.get() == before + 1
