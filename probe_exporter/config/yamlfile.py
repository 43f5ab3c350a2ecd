"""YAML loading that remembers where every key came from, and what every scalar said.

Pydantic reports errors as a path of keys; the line map lets a ConfigError name the
file and line of that path, the way Go's yaml.v3 decoder does.

Go's yaml decodes a scalar into a string field as the text that was written, whatever YAML 1.1
would resolve it to: `X-Flag: on` is the header value "on", not a boolean, and `version: 1.10` is
"1.10". PyYAML resolves such plain scalars to bool, int, float or a date, so the loader keeps their
source text beside the value (`ScalarTexts`), and StrictModel gives a string field that text.
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


class YamlMapping(dict[Any, Any]):
    """A mapping with the source text of its plain non-string scalar values (key -> text)."""

    scalar_texts: dict[Any, str]


class YamlSequence(list[Any]):
    """A sequence with the source text of its plain non-string scalar items (index -> text)."""

    scalar_texts: dict[Any, str]


ScalarTexts = YamlMapping | YamlSequence


def _plain_text(node: yaml.Node, value: Any) -> str | None:
    """The written text of a plain (unquoted, untagged) scalar that YAML resolved to a non-string."""
    if (isinstance(node, yaml.ScalarNode) and not node.style and value is not None
            and not isinstance(value, (str, bytes))):
        return str(node.value)
    return None


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
        texts: dict[Any, str] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            child: Path = (*path, key)
            lines.add(child, key_node.start_mark.line + 1)
            result[key] = _construct(loader, value_node, child, lines, filename)
            text = _plain_text(value_node, result[key])
            if text is not None:
                texts[key] = text
        return _with_texts(YamlMapping(result), texts) if texts else result
    if isinstance(node, yaml.SequenceNode):
        items = [_construct(loader, item, (*path, i), lines, filename) for i, item in enumerate(node.value)]
        texts = {i: text for i, (item_node, item) in enumerate(zip(node.value, items, strict=True))
                 if (text := _plain_text(item_node, item)) is not None}
        return _with_texts(YamlSequence(items), texts) if texts else items
    return loader.construct_object(node, deep=True)


def _with_texts(container: ScalarTexts, texts: dict[Any, str]) -> ScalarTexts:
    container.scalar_texts = texts
    return container
