"""Configuration errors that point at the file, line and key at fault."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration file could not be loaded; says where and why in one line."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line:
                where += f":{self.line}"
            where += ": "
        key = f"{_one_line(self.key)}: " if self.key else ""
        return f"error parsing config file: {where}{key}{' '.join(self.message.split())}"


def _one_line(text: str) -> str:
    """Keys are user data: escape control characters so the error stays one line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode()
