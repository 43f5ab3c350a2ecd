"""A real exporter process on an ephemeral port, with every stderr line kept for the test to read."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

# The startup line in either format: `msg="Listening on" address=127.0.0.1:PORT` or its JSON form.
_LISTENING = re.compile(r'"?msg"?[=:] ?"Listening on".*?"?address"?[=:] ?"?(\S+?:\d+)"?[ ,}\n]')


class ExporterProcess:
    """`command` plus `--web.listen-address=LISTEN` (an ephemeral port by default); `base_url` once it
    logged the address it got."""

    def __init__(self, command: Sequence[str], cwd: Path, env: dict[str, str] | None = None,
                 scheme: str = "http", listen: str = "127.0.0.1:0") -> None:
        self.process = subprocess.Popen([*command, f"--web.listen-address={listen}"], cwd=cwd, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.address = ""
        self.scheme = scheme
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match and not self.address:
                self.address = match.group(1)
                self._listening.set()
        self._listening.set()

    def wait_listening(self, timeout: float = 30.0) -> str:
        """The base URL once the server accepts connections: the address is logged when the socket is
        bound, and uvicorn starts listening on it a moment later."""
        deadline = time.monotonic() + timeout
        self._listening.wait(timeout)
        if not self.address:
            raise AssertionError("the exporter did not log its listen address:\n" + "\n".join(self.lines))
        host, _, port = self.address.rpartition(":")
        while True:
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
                return self.base_url
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    lines = "\n".join(self.lines)
                    raise AssertionError(f"the exporter does not accept connections:\n{lines}") from None
                time.sleep(0.05)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def stop(self) -> list[str]:
        """Terminate it and return every stderr line it wrote."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)  # every line up to EOF
        return list(self.lines)

    def __enter__(self) -> ExporterProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def non_json_lines(lines: Sequence[str]) -> list[str]:
    """The lines that are not one JSON object each."""
    bad = []
    for line in lines:
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    return bad
