"""A module walking ifOperStatus labelled by ifAlias, ifDescr and ifName (snmp_exporter PR #1121's
example): the lookup cache's tests and bench/snmp/bench_lookup_cache.py use it."""

from __future__ import annotations

IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18"


def if_status_module(lookup_cache: str | None = None) -> str:
    """The module's YAML body (indented for `modules:`), with `lookup_cache` when given."""
    lookups = "".join(
        f"          - {{labels: [ifIndex], labelname: {name}, oid: {oid}, type: DisplayString}}\n"
        for name, oid in (("ifAlias", IF_ALIAS), ("ifDescr", IF_DESCR), ("ifName", IF_NAME)))
    cache = f"    lookup_cache: {lookup_cache}\n" if lookup_cache is not None else ""
    return (f"    walk: [{IF_OPER_STATUS}, {IF_ALIAS}, {IF_DESCR}, {IF_NAME}]\n{cache}"
            "    metrics:\n"
            f"      - name: ifOperStatus\n        oid: {IF_OPER_STATUS}\n        type: gauge\n"
            "        help: The current operational state of the interface.\n"
            "        indexes: [{labelname: ifIndex, type: gauge}]\n"
            "        lookups:\n" + lookups)
