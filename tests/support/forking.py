"""Running a function in a forked child, as a worker process runs after the parent forks it."""

from __future__ import annotations

import os
from collections.abc import Callable


def in_forked_child(draw: Callable[[], bytes]) -> bytes:
    """What `draw` returns in a child forked now (the child ends right after, whatever happens)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery beyond this point
        status = 1
        try:
            os.write(write_end, draw())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        drawn = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child failed"
    return drawn
