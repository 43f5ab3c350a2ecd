"""The history (landing page, /logs) of every worker, asked for by whichever worker answers.

Each worker keeps its own ProbeHistory; probe ids are unique over the workers (see
cluster._seed_probe_ids), so `/logs?id=` names one probe wherever it ran. Without siblings (one
worker) these functions read the local history only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from probe_exporter.history import ProbeRecord

if TYPE_CHECKING:
    from probe_exporter.exporter import Exporter
    from probe_exporter.workers.peers import Peers


@dataclass(frozen=True)
class OutcomeSummary:
    duration: float
    reason: str


@dataclass(frozen=True)
class RemoteRecord:
    """What the landing page shows of a probe another worker ran (its debug text stays there)."""

    probe_id: int
    module_name: str
    target: str
    success: bool
    finished_at: float
    outcome: OutcomeSummary


def serve_history(peers: Peers, exporter: Exporter) -> None:
    """Answer siblings' history questions from this worker's history."""

    async def records(_: dict[str, Any]) -> list[dict[str, Any]]:
        return [_summary(record) for record in exporter.history.records()]

    async def log_by_id(request: dict[str, Any]) -> str | None:
        record = exporter.history.by_id(int(request["id"]))
        return record.debug_text() if record is not None else None

    async def log_by_target(request: dict[str, Any]) -> tuple[float, str] | None:
        record = exporter.history.by_target(str(request["target"]), request.get("module") or None)
        return (record.finished_at, record.debug_text()) if record is not None else None

    peers.handle("history.records", records)
    peers.handle("history.log_by_id", log_by_id)
    peers.handle("history.log_by_target", log_by_target)


async def history_records(exporter: Exporter) -> list[ProbeRecord | RemoteRecord]:
    """Newest first: the last `limit` probes of all workers, and failures older than those (as many
    again), as one worker's history keeps them."""
    peers = exporter.peers
    if peers is None:
        return list(exporter.history.records())
    answers = await peers.ask_all({"op": "history.records"})
    local = {record.probe_id: record for record in exporter.history.records()}
    merged: list[ProbeRecord | RemoteRecord] = []
    for index, summaries in answers.items():
        for summary in summaries:
            if index == peers.index and summary["probe_id"] in local:
                merged.append(local[summary["probe_id"]])
            else:
                merged.append(RemoteRecord(summary["probe_id"], summary["module_name"], summary["target"],
                                           summary["success"], summary["finished_at"],
                                           OutcomeSummary(summary["duration"], summary["reason"])))
    merged.sort(key=lambda record: record.finished_at, reverse=True)
    limit = exporter.history.limit
    recent, older = merged[:limit], merged[limit:]
    return recent + [record for record in older if not record.success][:limit]


async def log_by_id(exporter: Exporter, probe_id: int) -> str | None:
    """The debug text of probe `probe_id`, whichever worker ran it."""
    if exporter.peers is None:
        record = exporter.history.by_id(probe_id)
        return record.debug_text() if record is not None else None
    answers = await exporter.peers.ask_all({"op": "history.log_by_id", "id": probe_id})
    return next((text for text in answers.values() if text is not None), None)


async def log_by_target(exporter: Exporter, target: str, module_name: str | None) -> str | None:
    """The debug text of the oldest kept probe of `target` over all workers."""
    if exporter.peers is None:
        record = exporter.history.by_target(target, module_name)
        return record.debug_text() if record is not None else None
    answers = await exporter.peers.ask_all({"op": "history.log_by_target", "target": target, "module": module_name})
    found = sorted(tuple(answer) for answer in answers.values() if answer is not None)
    return str(found[0][1]) if found else None


def _summary(record: ProbeRecord) -> dict[str, Any]:
    return {"probe_id": record.probe_id, "module_name": record.module_name, "target": record.target,
            "success": record.success, "finished_at": record.finished_at,
            "duration": record.outcome.duration, "reason": record.outcome.reason}
