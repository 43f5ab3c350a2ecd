"""Workers asking each other: one unix socket per worker in the private directory.

One request per connection: a JSON line with an `op`, answered by one JSON line. The ops are
registered by the modules that need them (history, reload); a worker answers from its event loop,
so a request never waits on a lock another request holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from probe_exporter import logs

# A probe's debug text (an SNMP walk) can be large; the history keeps at most MAX_SAMPLES_KEPT samples.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
ASK_TIMEOUT_SECONDS = 5.0
CONNECT_RETRY_SECONDS = 0.05

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class Peers:
    """This worker's server, and the client side towards its siblings."""

    def __init__(self, index: int, socket_path: Callable[[int], str], pids: Callable[[], dict[int, int]]) -> None:
        self.index = index
        self._socket_path = socket_path
        self._pids = pids
        self._handlers: dict[str, Handler] = {}
        self._server: asyncio.AbstractServer | None = None

    def handle(self, op: str, handler: Handler) -> None:
        self._handlers[op] = handler

    def siblings(self) -> list[int]:
        """Indexes of the other workers running now."""
        return sorted(index for index in self._pids() if index != self.index)

    async def start(self) -> None:
        path = self._socket_path(self.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by the worker this one replaces
        self._server = await asyncio.start_unix_server(self._serve, path=path, limit=MAX_MESSAGE_BYTES)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            reply = await self.answer(request)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError) as err:  # the asking worker went away
            logs.log(logging.DEBUG, "Peer request failed", err=str(err))
        except Exception:  # a bug in a handler: the asking worker sees no answer, as from a dead worker
            logs.logger.exception("Peer request failed")
        finally:
            writer.close()

    async def answer(self, request: dict[str, Any]) -> Any:
        """This worker's answer to `request` (also used for itself, without a socket)."""
        handler = self._handlers.get(str(request.get("op")))
        if handler is None:
            return {"error": f"unknown op {request.get('op')!r}"}
        return await handler(request)

    async def ask(self, index: int, request: dict[str, Any], timeout: float = ASK_TIMEOUT_SECONDS) -> Any:
        """Worker `index`'s answer; raises OSError (or TimeoutError) when it cannot answer."""
        async with asyncio.timeout(timeout):
            reader, writer = await self._connect(index)
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
        if not line:
            raise ConnectionError(f"worker {index} closed the connection")
        return json.loads(line)

    async def _connect(self, index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to worker `index`; while it is starting (its socket not there yet) and still in
        the parent's table, try again: a reload must not leave a worker behind for starting late."""
        while True:
            try:
                return await asyncio.open_unix_connection(self._socket_path(index), limit=MAX_MESSAGE_BYTES)
            except (FileNotFoundError, ConnectionRefusedError):
                if index not in self._pids():
                    raise
                await asyncio.sleep(CONNECT_RETRY_SECONDS)

    async def ask_all(self, request: dict[str, Any], timeout: float = ASK_TIMEOUT_SECONDS) -> dict[int, Any]:
        """Every running worker's answer, this one's included; a sibling that does not answer (it is
        starting or dying) is left out and logged."""
        siblings = self.siblings()
        replies = await asyncio.gather(self.answer(request), *(self.ask(index, request, timeout) for index in siblings),
                                       return_exceptions=True)
        answers: dict[int, Any] = {}
        for index, reply in zip([self.index, *siblings], replies, strict=True):
            if isinstance(reply, BaseException):
                if not isinstance(reply, (OSError, TimeoutError, ValueError)):
                    raise reply
                logs.log(logging.WARNING, "Worker did not answer", worker=index, op=request.get("op"), err=str(reply))
                continue
            answers[index] = reply
        return answers
