"""Reloads with several workers: every worker switches to the new config, or none does.

Whichever worker is asked (`POST /-/reload`, or SIGHUP, which the parent hands to its oldest worker)
coordinates, in two phases over the peer sockets:

1. prepare: every worker loads the files itself, off its event loop, and keeps the result aside;
2. commit, when every worker loaded the same config (same checksum); otherwise abort, and every
   worker keeps serving the config it had.

A file changed between two workers' loads gives two checksums: that is an abort too, and the next
reload settles it. One reload at a time over the whole exporter (an flock in the private directory).
A worker that missed a commit (a replacement forked from the parent's startup config, or one that
was starting and did not answer the prepare) notices it in the shared block, where every commit is
recorded, loads the files and switches if they still hold the committed config.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from probe_exporter import logs
from probe_exporter.config import Config, ConfigError
from probe_exporter.exporter import Exporter, load_config_and_probers

if TYPE_CHECKING:
    from probe_exporter.workers.peers import Peers
    from probe_exporter.workers.shared import SharedBlock

# A large snmp.yml takes seconds to load; a worker that has not answered by then is left out.
PREPARE_TIMEOUT_SECONDS = 120.0
FOLLOW_SECONDS = 1.0


class Reloads:
    def __init__(self, exporter: Exporter, peers: Peers, block: SharedBlock, lock_path: str) -> None:
        self._exporter = exporter
        self._peers = peers
        self._block = block
        self._lock_path = lock_path
        self._prepared: dict[str, Config] = {}
        self._generation = 0  # of the committed config this worker runs (or gave up on)
        peers.handle("reload.prepare", self._prepare)
        peers.handle("reload.commit", self._commit)
        peers.handle("reload.abort", self._abort)
        exporter.reload_everywhere = self.reload_everywhere

    async def reload_everywhere(self) -> None:
        """Raises ConfigError (and every worker keeps its config) unless every worker switched."""
        async with self._one_reload_at_a_time():
            token = uuid.uuid4().hex
            answers = await self._peers.ask_all({"op": "reload.prepare", "token": token}, PREPARE_TIMEOUT_SECONDS)
            errors = [str(answer["error"]) for answer in answers.values() if not answer.get("ok")]
            checksums = {answer["checksum"] for answer in answers.values() if answer.get("ok")}
            if errors or len(checksums) != 1:
                await self._peers.ask_all({"op": "reload.abort", "token": token})
                reason = errors[0] if errors else "the config files changed while the workers loaded them"
                logs.log(logging.ERROR, "Error reloading config", err=reason, workers=len(answers))
                raise ConfigError(reason)
            self._block.commit_config(checksums.pop())
            await self._peers.ask_all({"op": "reload.commit", "token": token})

    def catch_up(self) -> None:
        """Switch to the config the others committed, if this worker missed it and the files still
        hold it; else keep the one it runs and say so (the next reload aligns every worker)."""
        generation, checksum = self._block.committed_config()
        if generation == self._generation:
            return
        self._generation = generation
        if checksum == self._exporter.config.checksum:
            return
        try:
            config = load_config_and_probers(self._exporter.settings)
        except ConfigError as err:
            config = None
            reason = str(err)
        else:
            reason = "the config files changed since the last reload"
        if config is not None and config.checksum == checksum:
            self._exporter.switch_to(config)
            return
        self._exporter.metrics.reload_success.set(0)
        logs.log(logging.ERROR, "Worker could not load the config the other workers run; it keeps its own "
                 "until the next reload", err=reason)

    async def follow(self) -> None:
        """Catch up with commits this worker missed, for as long as it serves."""
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            if self._block.committed_config()[0] != self._generation:
                async with self._one_reload_at_a_time():
                    await asyncio.to_thread(self.catch_up)

    async def _prepare(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            config = await asyncio.to_thread(load_config_and_probers, self._exporter.settings)
        except ConfigError as err:
            return {"ok": False, "error": str(err)}
        self._prepared = {str(request["token"]): config}  # only the latest reload is ever committed
        return {"ok": True, "checksum": config.checksum}

    async def _commit(self, request: dict[str, Any]) -> bool:
        config = self._prepared.pop(str(request["token"]), None)
        if config is None:
            return False
        self._exporter.switch_to(config)
        self._generation = self._block.committed_config()[0]
        return True

    async def _abort(self, request: dict[str, Any]) -> bool:
        self._prepared.pop(str(request["token"]), None)
        self._exporter.metrics.reload_success.set(0)
        return True

    @contextlib.asynccontextmanager
    async def _one_reload_at_a_time(self) -> AsyncIterator[None]:
        # A descriptor of its own per reload: flock excludes open file descriptions, so two reloads
        # in one worker wait for each other too. Taken in a thread: the event loop goes on meanwhile.
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
