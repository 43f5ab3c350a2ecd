"""One module's SNMP traffic: dynamic filters, then gets, then walks, with gosnmp's semantics.

Walks follow gosnmp's walk(): GETBULK (GETNEXT for v1) from the root; stop silently on an error
status, on leaving the subtree or on an exception value; a first answer already outside the
subtree turns the walk into a GET of the root (how a scalar instance is walked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from probe_exporter.probers.snmp import lookupcache, values
from probe_exporter.probers.snmp.engine import Session, SnmpError
from probe_exporter.probers.snmp.lookupcache import ScrapeTables
from probe_exporter.probers.snmp.plan import ModulePlan
from probe_exporter.probers.snmp.values import END_OF_MIB, NO_SUCH, Value

OidValue = tuple[tuple[int, ...], Value]

# gosnmp's defaultMaxRepetitions, used when a module says 0.
DEFAULT_MAX_REPETITIONS = 50
_NO_SUCH_NAME = 2


class WalkError(SnmpError):
    pass


class Progress(Protocol):
    """Told about a module's PDUs as they arrive (progressive.ProgressiveRender)."""

    def received(self, pdus: list[OidValue]) -> None: ...

    def phase_done(self) -> None:
        """The gets, or one walk root, are complete."""


def _ignore(pdus: list[OidValue]) -> None:
    pass


async def walk(session: Session, root: tuple[int, ...], max_repetitions: int, allow_nonincreasing: bool,
               limit: int, received: Callable[[list[OidValue]], None] = _ignore) -> list[OidValue]:
    """Every varbind under `root`, each answer's share also handed to `received` as it is taken;
    raises SnmpError (timeouts included) and WalkError."""
    results: list[OidValue] = []
    depth = len(root)
    request_oid = root
    use_bulk = session.version != 1
    repetitions = max_repetitions or DEFAULT_MAX_REPETITIONS
    first = True
    while True:
        if use_bulk:
            response = await session.get_bulk([request_oid], repetitions)
        else:
            response = await session.get_next([request_oid])
        if not response.varbinds or response.error_status:
            return results
        varbinds = response.varbinds
        kept = 0  # the varbinds taken as they are (their tuples are kept, not copied)
        for oid, value in varbinds:
            kind = value[0]
            if kind == END_OF_MIB or kind == NO_SUCH:
                received(varbinds[:kept])
                results.extend(varbinds[:kept])
                return results
            if len(oid) <= depth or oid[:depth] != root:
                if first and kept == 0:
                    instance = await _get_root(session, root)
                    received(instance)
                    return results + instance
                received(varbinds[:kept])
                results.extend(varbinds[:kept])
                return results
            # gosnmp only catches an OID equal to the one asked for; an OID going backwards would
            # loop until the deadline there, so we stop it here with the same error.
            if not allow_nonincreasing and oid <= request_oid:
                raise WalkError(f"OID not increasing: {values.oid_text(oid)}")
            kept += 1
        received(varbinds)
        results.extend(varbinds)
        last = varbinds[-1][0]
        if len(results) > limit:
            raise WalkError(f"walk of {values.oid_text(root)} returned more than {limit} varbinds")
        first = False
        request_oid = last


async def _get_root(session: Session, root: tuple[int, ...]) -> list[OidValue]:
    response = await session.get([root])
    if response.error_status:  # e.g. v1's noSuchName: gosnmp ends the walk on any error status
        return []
    return [(oid, value) for oid, value in response.varbinds
            if oid == root and value[0] not in (NO_SUCH, END_OF_MIB)]


async def get(session: Session, oids: list[tuple[int, ...]], max_repetitions: int,
              log_debug: Callable[..., None]) -> list[OidValue]:
    """GETs in chunks of max_repetitions OIDs (one at a time for v1 or max_repetitions 0)."""
    chunk = max_repetitions if max_repetitions and session.version != 1 else 1
    found: list[OidValue] = []
    for start in range(0, len(oids), chunk):
        batch = oids[start:start + chunk]
        response = await session.get(batch)
        if session.version == 1 and response.error_status == _NO_SUCH_NAME:
            log_debug("OID not supported by target", oids=values.oid_text(batch[0]))
            continue
        if response.error_status:
            raise SnmpError(f"error reported by target: Error Status {response.error_status}")
        for oid, value in response.varbinds:
            if value[0] in (NO_SUCH, END_OF_MIB):
                log_debug("OID not supported by target", oids=values.oid_text(oid))
                continue
            found.append((oid, value))
    return found


async def scrape(session: Session, plan: ModulePlan, log: Any, limit: int, host: str,
                 tables: ScrapeTables | None = None, progress: Progress | None = None) -> list[OidValue]:
    """The module's PDUs, in upstream's order: filters, gets, walks (a later duplicate wins later).
    With `tables` (--snmp.lookup-cache), the lookup-only walks come from the cache when fresh.
    `progress` hears of the gets' and walks' PDUs as they arrive, and of each phase's end."""
    from probe_exporter.probers.snmp.render import display_string

    walks = list(plan.walk)
    gets = list(plan.get)
    allowed_by_target: dict[str, set[str]] = {}
    for flt in plan.filters:
        try:
            filter_pdus = await walk(session, flt.oid, plan.max_repetitions, plan.allow_nonincreasing, limit)
        except SnmpError as err:
            log.info("Error getting OID, won't do any filter on this oid", oid=values.oid_text(flt.oid), err=str(err))
            continue
        allowed: set[str] = set()
        for oid, value in filter_pdus:
            text = display_string(value)
            if any(regex.search(text) for regex in flt.values):
                allowed.add(str(oid[-1]))
        for target in flt.targets:
            previous = allowed_by_target.get(target)
            allowed_by_target[target] = allowed if previous is None else previous & allowed
        walks = [w for w in walks if values.oid_text(w) not in flt.targets]
        # Upstream drops gets by string prefix of the target; kept as is.
        gets = [g for g in gets if not any(values.oid_text(g).startswith(t) for t in flt.targets)]
    for target, allowed in allowed_by_target.items():
        target_oid = values.parse_oid(target)
        gets.extend((*target_oid, int(index)) for index in sorted(allowed, key=int))

    received = progress.received if progress is not None else _ignore
    pdus: list[OidValue] = []
    if gets:
        try:
            got = await get(session, gets, plan.max_repetitions, log.debug)
        except SnmpError as err:
            raise SnmpError(f"error getting target {host}: {err}") from None
        pdus.extend(got)
        received(got)
    if progress is not None:
        progress.phase_done()
    cacheable = plan.lookup_only if tables is not None else frozenset()
    if tables is not None and any(root in cacheable for root in walks):
        try:
            await _guard(session, tables)
        except SnmpError as err:
            raise SnmpError(f"error getting target {host}: {err}") from None
    for root in walks:
        cached = tables.take(root) if tables is not None and root in cacheable else None
        if cached is not None:
            received(cached)
            walked = cached
        else:
            try:
                walked = await walk(session, root, plan.max_repetitions, plan.allow_nonincreasing, limit - len(pdus),
                                    received)
            except SnmpError as err:
                raise SnmpError(f"error walking target {host}: {err}") from None
            if tables is not None and root in cacheable:
                tables.keep(root, walked)
        pdus.extend(walked)
        if progress is not None:
            progress.phase_done()
    return pdus


async def _guard(session: Session, tables: ScrapeTables) -> None:
    """sysUpTime.0 (and the v3 engine boots it resynced to): the cache's reboot check."""
    response = await session.get([lookupcache.SYS_UPTIME])
    uptime = None if response.error_status else lookupcache.uptime_of(response.varbinds)
    state = session.engine.v3_engines.get(session.address) if session.version == 3 else None
    tables.guard(uptime, state.boots if state is not None else None)
