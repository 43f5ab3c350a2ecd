"""YAML loading that remembers where every key came from.

Pydantic reports errors as a path of keys; the line map lets a ConfigError name the
file and line of that path, the way Go's yaml.v3 decoder does.
"""

from __future__ import annotations

from typing import Any

import yaml

try:  # libyaml is ~10x faster on the large generated snmp.yml
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

from probe_exporter.config.errors import ConfigError

Path = tuple[str | int, ...]


class LineMap:
    """Maps a key path (as pydantic reports it) to the 1-based line that defines it."""

    def __init__(self) -> None:
        self._lines: dict[Path, int] = {}

    def add(self, path: Path, line: int) -> None:
        self._lines[path] = line

    def add_if_new(self, path: Path, line: int) -> None:
        self._lines.setdefault(path, line)

    def line_of(self, path: Path) -> int | None:
        """The line of the deepest known prefix: a missing key is reported at its parent mapping."""
        for end in range(len(path), -1, -1):
            line = self._lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def read_config_bytes(path: str) -> bytes:
    """A config file's bytes; ConfigError naming the file (with the OS reason only) if unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise ConfigError(err.strerror or str(err), file=path) from None


def load_yaml_file(path: str) -> tuple[Any, LineMap]:
    """read_config_bytes then load_yaml: (data, line map), or ConfigError with file:line."""
    return load_yaml(read_config_bytes(path), path)


def load_yaml(text: str | bytes, filename: str) -> tuple[Any, LineMap]:
    """Parse one YAML document; duplicate keys are errors, as in yaml.v3."""
    loader = _Loader(text)
    lines = LineMap()
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        data = _construct(loader, node, (), lines, filename)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        raise ConfigError(str(err.problem or err).strip(), file=filename,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise ConfigError(str(err).strip(), file=filename) from None
    finally:
        loader.dispose()
    return data, lines


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path, lines: LineMap, filename: str) -> Any:
    lines.add_if_new(path, node.start_mark.line + 1)  # a key's own line wins over its value's
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise ConfigError("mapping key must be a scalar", file=filename, line=key_node.start_mark.line + 1)
            if key in seen:
                raise ConfigError(f'mapping key "{key}" already defined', file=filename,
                                  line=key_node.start_mark.line + 1, key=str(key))
            seen.add(key)
        # `<<: *anchor` merge keys: merged pairs come first, so the mapping's own keys override them.
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            child: Path = (*path, key)
            lines.add(child, key_node.start_mark.line + 1)
            result[key] = _construct(loader, value_node, child, lines, filename)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, i), lines, filename) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
