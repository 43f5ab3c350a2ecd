"""Optional features and the pip extra that installs each (`pip install 'probe-exporter[grpc]'`).

A prober or SQL driver whose library is missing does not stop the exporter: its module still loads, its
probes fail with the reason "install probe-exporter[EXTRA]", and `--config.check` warns. The extras are
declared in pyproject.toml; `all` installs every one. This module imports nothing of the package, so
every layer can use it (config.Module.missing_extras says what one module lacks).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

# extra -> the top-level modules the code imports from it (the first one answers "is it installed?").
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "postgresql": ("psycopg",),
    "mysql": ("aiomysql", "pymysql"),
    "sqlalchemy": ("sqlalchemy",),
    "grpc": ("grpc_health", "google.protobuf"),
    "http3": ("aioquic",),
    "cel": ("celpy",),
}
# SQL driver -> its extra (sqlite is the standard library's). A prober's own extra is in its registry entry.
SQL_DRIVER_EXTRAS = {"postgresql": "postgresql", "mysql": "mysql", "sqlalchemy": "sqlalchemy"}


class MissingExtra(ImportError):
    """A feature's library is not installed; the message says which extra installs it."""

    def __init__(self, extra: str, module: str = "") -> None:
        self.extra = extra
        super().__init__(f"install probe-exporter[{extra}]" + (f" (no module named {module!r})" if module else ""),
                         name=module or None)


def missing_extra(extra: str, err: ImportError) -> MissingExtra | ImportError:
    """`err` as a MissingExtra when it is the absence of one of `extra`'s own modules; otherwise `err`
    itself (a broken install or a bug in the library must not read as "install the extra")."""
    name = err.name or ""
    if isinstance(err, MissingExtra):
        return err
    if isinstance(err, ModuleNotFoundError) and any(name == top or name.startswith(top + ".") or
                                                    top.startswith(name + ".") for top in EXTRA_MODULES[extra]):
        return MissingExtra(extra, name)
    return err


@contextlib.contextmanager
def required(extra: str) -> Iterator[None]:
    """Around the imports of an optional library: `with required("grpc"): from grpc_health... import ...`
    raises MissingExtra("grpc") when the library is not installed."""
    try:
        yield
    except ImportError as err:
        converted = missing_extra(extra, err)
        if converted is err:
            raise
        raise converted from None


def installed(extra: str) -> bool:
    """Whether `extra`'s libraries can be imported (found, not imported: cheap)."""
    for name in EXTRA_MODULES[extra]:
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except ModuleNotFoundError:  # a parent package (google. for google.protobuf) is missing
            return False
    return True
