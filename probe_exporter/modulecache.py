"""Typed keys of a module's cache: what a prober builds once per module (a client, an SSL context,
a compiled plan) and reuses across probes until the module is reloaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class CacheKey(Generic[T]):
    """A slot of a module's cache: `module.cached(KEY, build)` returns a T. Declared next to the code
    that builds the object (`HTTP_CLIENT = CacheKey[ModuleClient]("http.client")`)."""

    name: str
