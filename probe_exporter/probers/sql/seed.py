"""SQLite databases built from a script on first use (the zero-setup demo).

The file goes to a cache directory under a name derived from the script's content, is written to a
temporary name and renamed into place (so concurrent first probes are safe), and is then opened
read-only like any other SQLite target. Editing the script builds a new file.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "probe_exporter", "sql")
    try:
        os.makedirs(directory, exist_ok=True)
        if os.access(directory, os.W_OK):
            return directory
    except OSError:
        pass
    directory = os.path.join(tempfile.gettempdir(), f"probe_exporter-{os.getuid()}", "sql")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return directory


def seeded_database(script_path: str) -> str:
    """The path of the database built from `script_path`, building it if needed (blocking: run in a thread)."""
    with open(script_path, "rb") as handle:
        script = handle.read()
    stem = os.path.splitext(os.path.basename(script_path))[0]
    path = os.path.join(cache_dir(), f"{stem}-{hashlib.sha256(script).hexdigest()[:16]}.db")
    if os.path.exists(path):
        return path
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    os.close(fd)
    try:
        conn = sqlite3.connect(temporary)
        try:
            conn.executescript(script.decode("utf-8"))
            conn.commit()
        finally:
            conn.close()
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path
