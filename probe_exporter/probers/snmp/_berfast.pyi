from collections.abc import Callable

from probe_exporter.probers.snmp.values import Value

def configure(error: type[Exception], value_fallback: Callable[[int, bytes], Value], integer: int, unsigned: int,
              counter64: int, octets: int, oid: int, ipaddress: int, null: int, no_such: int,
              end_of_mib: int) -> None: ...
def varbinds(data: bytes, pos: int, end: int) -> list[tuple[tuple[int, ...], Value]]: ...
