"""The `sql:` block of a `prober: sql` module, and burningalchemist sql_exporter collector files.

Collector files are read unmodified (one collector per file, unknown keys rejected as sql_exporter
does). They are loaded when the config is loaded, so a bad file fails the load or the reload, never
a probe. Metric and label names are checked here too: prometheus_client would happily write an
invalid name, and Prometheus would then reject the whole scrape.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PlainSerializer, PrivateAttr, field_validator, model_validator

from probe_exporter.config.errors import ConfigError, validate_model
from probe_exporter.config.types import ModelDuration, Secret, StrictModel
from probe_exporter.config.yamlfile import LineMap, load_yaml_file
from probe_exporter.limits import TargetPolicy
from probe_exporter.masking import SECRET_MARK, is_secret_parameter, mask, url_secrets

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Prometheus adds these to a /probe scrape; a query-made label of the same name would be overwritten.
RESERVED_LABELS = ("job", "instance")

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


def _check_label_name(name: str, what: str) -> str:
    if not LABEL_NAME.match(name) or name.startswith("__"):
        raise ValueError(f"invalid label name {name!r} in {what}")
    if name in RESERVED_LABELS:
        raise ValueError(f"label name {name!r} in {what} is reserved (Prometheus sets it)")
    return name


# --- collector files (burningalchemist/sql_exporter format) ---------------------------------------

class CollectorQuery(StrictModel):
    """A named query under `queries:`, shared by metrics through `query_ref`."""

    query_name: str
    query: str
    # Accepted as in sql_exporter's files; we never use server-side prepared statements anyway.
    no_prepared_statement: bool = False


class CollectorMetric(StrictModel):
    metric_name: str
    type: str
    help: str
    key_labels: list[str] = Field(default_factory=list)
    value_label: str | None = None
    values: list[str] = Field(default_factory=list)
    static_labels: dict[str, str] = Field(default_factory=dict)
    static_value: float | None = None
    timestamp_value: str | None = None
    query: str | None = None
    query_ref: str | None = None
    no_prepared_statement: bool = False  # accepted, as above

    @field_validator("metric_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not METRIC_NAME.match(value):
            raise ValueError(f"invalid metric name {value!r}")
        return value

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        kind = value.lower()
        if kind not in ("counter", "gauge"):
            raise ValueError(f'unsupported metric type {value!r} (counter or gauge)')
        return kind

    @model_validator(mode="after")
    def _check_shape(self) -> CollectorMetric:
        what = f"metric {self.metric_name}"
        if (self.query is None) == (self.query_ref is None):
            raise ValueError(f"exactly one of query and query_ref must be specified for {what}")
        if (self.static_value is None) == (not self.values):
            raise ValueError(f"exactly one of values and static_value must be specified for {what}")
        if len(self.values) > 1 and not self.value_label:
            raise ValueError(f"value_label must be defined for {what} (it has more than one value column)")
        if len(self.values) <= 1 and self.value_label:
            raise ValueError(f"value_label is only allowed with more than one value column in {what}")
        if len(set(self.key_labels)) != len(self.key_labels):
            raise ValueError(f"duplicate key label in {what}")
        for column in self.values:
            if column in self.key_labels:
                raise ValueError(f"column {column!r} used both as key and value in {what}")
        for label in self.label_names():
            _check_label_name(label, what)
        if len(set(self.label_names())) != len(self.label_names()):
            raise ValueError(f"duplicate label name in {what} (key_labels, value_label and static_labels overlap)")
        return self

    def label_names(self) -> list[str]:
        names = list(self.key_labels)
        if self.value_label:
            names.append(self.value_label)
        names.extend(self.static_labels)
        return names


class Collector(StrictModel):
    collector_name: str
    min_interval: ModelDuration = 0.0
    metrics: list[CollectorMetric] = Field(min_length=1)
    queries: list[CollectorQuery] = Field(default_factory=list)

    _plans: list[QueryPlan] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_refs(self) -> Collector:
        names = [q.query_name for q in self.queries]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"duplicate query name {sorted(duplicates)[0]!r} in collector {self.collector_name}")
        for metric in self.metrics:
            if metric.query_ref is not None and metric.query_ref not in names:
                raise ValueError(f"query_ref {metric.query_ref!r} not found in collector {self.collector_name}")
        used_as: dict[tuple[str, str], str] = {}  # (query, column) -> "key" | "value"
        for metric in self.metrics:
            query = metric.query_ref or f"metric:{metric.metric_name}"
            for role, columns in (("key", metric.key_labels), ("value", metric.values)):
                for column in columns:
                    if used_as.setdefault((query, column), role) != role:
                        raise ValueError(f"column {column!r} used both as key and value in collector "
                                         f"{self.collector_name}")
        return self

    def plans(self) -> list[QueryPlan]:
        """The queries this collector runs, each with the metrics built from its rows (worked out once)."""
        if self._plans is None:
            plans: list[QueryPlan] = []
            by_name = {q.query_name: QueryPlan(q.query_name, q.query, []) for q in self.queries}
            for metric in self.metrics:
                if metric.query_ref is not None:
                    by_name[metric.query_ref].metrics.append(metric)
                else:
                    assert metric.query is not None
                    plans.append(QueryPlan(metric.metric_name, metric.query, [metric]))
            # Named queries no metric uses are not run (sql_exporter does the same).
            plans.extend(plan for plan in by_name.values() if plan.metrics)
            self._plans = plans
        return self._plans


class QueryPlan:
    __slots__ = ("metrics", "name", "sql")

    def __init__(self, name: str, sql: str, metrics: list[CollectorMetric]) -> None:
        self.name = name
        self.sql = sql
        self.metrics = metrics


def load_collector_file(path: str) -> Collector:
    data, lines = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError("a collector file must be a mapping with collector_name and metrics", file=path, line=1)
    if "collectors" in data:
        raise ConfigError("a collector file holds one collector (collector_name, metrics), not a collectors: list",
                          file=path, line=lines.line_of(("collectors",)), key="collectors")

    collector: Collector = validate_model(Collector, data, lines, path, ())
    return collector


# --- credentials ------------------------------------------------------------------------------------

class SQLAuth(StrictModel):
    """Credentials, each given at most one way. `*_file` is re-read on each probe (rotation)."""

    username: str | None = None
    username_file: str | None = None
    username_env: str | None = None
    password: Secret | None = None
    password_file: str | None = None
    password_env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SQLAuth:
        for field in ("username", "password"):
            given = [k for k in (field, f"{field}_file", f"{field}_env") if getattr(self, k) is not None]
            if len(given) > 1:
                raise ValueError(f"at most one of {', '.join(given)} may be set")
        return self

    def resolve(self) -> tuple[str | None, Secret | None]:
        """(username, password) as of now; raises OSError/KeyError with a message free of secrets."""
        return (_read_source(self.username, self.username_file, self.username_env, "username"),
                _secret_source(self.password, self.password_file, self.password_env))


def _read_source(value: str | None, file: str | None, env: str | None, what: str) -> str | None:
    if value is not None:
        return value
    if file is not None:
        with open(file, encoding="utf-8") as handle:
            return handle.read().strip()
    if env is not None:
        if env not in os.environ:
            raise KeyError(f"environment variable {env} for the {what} is not set")
        return os.environ[env]
    return None


def _secret_source(value: Secret | None, file: str | None, env: str | None) -> Secret | None:
    if value is not None:
        return value
    text = _read_source(None, file, env, "password")
    return None if text is None else Secret(text)


# --- targets ----------------------------------------------------------------------------------------

class TargetAlias(StrictModel):
    """A name usable as `?target=`, standing for a host, a socket or (SQLite) a file."""

    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    socket: str | None = None
    database: str | None = None
    # SQLite: the database file. With `seed_script` and no `path`, the file is built from the script
    # on first use in a cache directory, then opened read-only like any other.
    path: str | None = None
    seed_script: str | None = None

    @model_validator(mode="after")
    def _one_address(self) -> TargetAlias:
        given = [k for k in ("host", "socket", "path") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"only one of {', '.join(given)} may be set")
        if not given and self.seed_script is None:
            raise ValueError("one of host, socket, path or seed_script must be set")
        return self


# The template's placeholders, filled with stand-ins to check at load that the DSN parses as a URL.
_PLACEHOLDER_STAND_INS = {"[{host}]": "[::1]", "{host}": "host", "{port}": "1", "{target}": "target", "{path}": "path",
                          "{database}": "database"}
DSN_UNPARSABLE = ("dsn does not parse as a URL (scheme://user:password@host:port/database?options): "
                  "percent-encode any of : / ? # @ [ ] in the user name and password")


def check_dsn_parses(dsn: str) -> str:
    """`dsn`, or a ValueError that quotes no part of it: a DSN that a URL parser splits in the wrong
    place (an unencoded `#` in the password) would put part of the password where errors show it,
    and hide the credentials from the check that a module with credentials has target_allow."""
    rendered = dsn
    for placeholder, stand_in in _PLACEHOLDER_STAND_INS.items():
        rendered = rendered.replace(placeholder, stand_in)
    try:
        parts = urlsplit(rendered)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(DSN_UNPARSABLE) from None
    if "://" not in rendered or parts.fragment or "@" in parts.path:
        raise ValueError(DSN_UNPARSABLE)
    return dsn


def _mask_dsn(dsn: str | None) -> str | None:
    return None if dsn is None else mask(dsn)


def _mask_options(options: dict[str, str]) -> dict[str, str]:
    return {key: SECRET_MARK if is_secret_parameter(key) else value for key, value in options.items()}


MaskedDSN = Annotated[str | None, PlainSerializer(_mask_dsn)]
MaskedOptions = Annotated[dict[str, str], PlainSerializer(_mask_options)]


class SQLModule(StrictModel):
    driver: Literal["postgresql", "mysql", "sqlite", "sqlalchemy"]
    # URL template; {host}, {port}, {target}, {path} and {database} are filled per probe.
    # Optional for postgresql/mysql (built from the target), required for sqlalchemy.
    dsn: MaskedDSN = None
    database: str | None = None
    default_port: int | None = Field(default=None, ge=1, le=65535)
    auth: SQLAuth | None = None
    # CIDRs, IP addresses or host-name globs (optionally :port): the target must match one before
    # anything connects. The same entries as a module's allowed_targets (probe_exporter.limits), plus:
    # a name is allowed when every address it resolves to is in an allowed network (then dialled).
    target_allow: list[str] = Field(default_factory=list)
    # SQLite: file globs a path target must match (after resolving symlinks).
    target_allow_paths: list[str] = Field(default_factory=list)
    targets: dict[str, TargetAlias] = Field(default_factory=dict)
    # Driver connection parameters (libpq keywords such as sslmode/sslrootcert/require_auth; for
    # mysql: charset, ssl_ca, ssl_cert, ssl_key, ssl_verify).
    options: MaskedOptions = Field(default_factory=dict)
    # Session settings (PG GUCs, MySQL session variables) applied at connect.
    session: dict[str, str] = Field(default_factory=dict)
    query_timeout: ModelDuration = 0.0
    connect_timeout: ModelDuration = 0.0
    max_rows_per_query: int = Field(default=10_000, ge=1)
    max_connections_per_probe: int = Field(default=1, ge=1, le=16)
    max_concurrency_per_target: int = Field(default=2, ge=1)
    max_concurrency: int = Field(default=32, ge=1)
    max_cache_keys: int = Field(default=1000, ge=1)
    collector_files: list[str] = Field(default_factory=list)
    collectors: list[dict[str, Any]] = Field(default_factory=list)
    # Names or globs of the collectors to run; default: every loaded collector.
    collector_names: list[str] = Field(default_factory=list)

    _collectors: list[Collector] = PrivateAttr(default_factory=list)
    _allow: TargetPolicy | None = PrivateAttr(default=None)

    @field_validator("target_allow")
    @classmethod
    def _check_allow(cls, entries: list[str]) -> list[str]:
        try:
            TargetPolicy(entries)
        except ValueError as err:  # say which key, in the words SQL users know
            raise ValueError(str(err).replace("in allowed_targets", "in target_allow")) from None
        return entries

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, dsn: str | None) -> str | None:
        return None if dsn is None else check_dsn_parses(dsn)

    @field_validator("session")
    @classmethod
    def _check_session(cls, settings: dict[str, str]) -> dict[str, str]:
        for key in settings:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key):
                raise ValueError(f"invalid session setting name {key!r}")
        return settings

    @model_validator(mode="after")
    def _check(self) -> SQLModule:
        if self.driver == "sqlalchemy" and not self.dsn:
            raise ValueError("dsn is required for the sqlalchemy driver")
        if self.has_credentials() and not (self.target_allow or self.target_allow_paths):
            raise ValueError("a module with credentials needs target_allow, target_allow_paths or the module's "
                             "allowed_targets: without one, /probe would send the credentials to any host")
        return self

    def has_credentials(self) -> bool:
        dsn_credentials = bool(self.dsn) and bool(url_secrets(self.dsn or ""))
        return dsn_credentials or self.auth is not None or any(is_secret_parameter(key) for key in self.options)

    @property
    def loaded_collectors(self) -> list[Collector]:
        return self._collectors

    def target_allow_policy(self) -> TargetPolicy:
        """target_allow compiled once: the same allowlist model as a module's allowed_targets."""
        if self._allow is None:
            self._allow = TargetPolicy(self.target_allow)
        return self._allow

    def port(self) -> int | None:
        return self.default_port or DEFAULT_PORTS.get(self.driver)


def load_module_collectors(module: Any, path: str, lines: LineMap, prefix: tuple[str | int, ...]) -> None:
    """Called by the loader for a `prober: sql` module: load its collectors, relative to `path`."""
    sql: SQLModule | None = module.sql
    key = ".".join(str(p) for p in prefix)
    if sql is None:
        raise ConfigError("a sql prober module needs a sql: block", file=path, line=lines.line_of(prefix), key=key)

    base_dir = os.path.dirname(os.path.abspath(path))
    collectors: list[Collector] = []
    sources: list[str] = []
    for i, body in enumerate(sql.collectors):
        collectors.append(validate_model(Collector, body, lines, path, (*prefix, "sql", "collectors", i)))
        sources.append(path)
    for i, pattern in enumerate(sql.collector_files):
        full = pattern if os.path.isabs(pattern) else os.path.join(base_dir, pattern)
        matches = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
        if not matches:
            raise ConfigError(f"no collector file matches {pattern!r}", file=path,
                              line=lines.line_of((*prefix, "sql", "collector_files", i)),
                              key=f"{key}.sql.collector_files")
        for match in matches:
            collectors.append(load_collector_file(match))
            sources.append(match)
    seen: dict[str, str] = {}
    for collector, source in zip(collectors, sources, strict=True):
        name = collector.collector_name
        if name in seen:
            raise ConfigError(f"collector {name!r} is defined twice ({seen[name]} and {source})", file=path,
                              line=lines.line_of((*prefix, "sql")), key=f"{key}.sql")
        seen[collector.collector_name] = source
    if sql.collector_names:
        selected = [c for c in collectors
                    if any(fnmatch.fnmatchcase(c.collector_name, p) for p in sql.collector_names)]
        for i, pattern in enumerate(sql.collector_names):
            if not any(fnmatch.fnmatchcase(c.collector_name, pattern) for c in collectors):
                raise ConfigError(f"unknown collector {pattern!r}", file=path,
                                  line=lines.line_of((*prefix, "sql", "collector_names", i)),
                                  key=f"{key}.sql.collector_names")
        collectors = selected
    if not collectors:
        raise ConfigError("no collectors: set collector_files or collectors", file=path,
                          line=lines.line_of((*prefix, "sql")), key=f"{key}.sql")
    try:
        check_families(collectors)
    except ValueError as err:
        raise ConfigError(str(err), file=path, line=lines.line_of((*prefix, "sql")), key=f"{key}.sql") from None
    for alias_name, alias in sql.targets.items():
        if alias.seed_script is not None and not os.path.isabs(alias.seed_script):
            alias.seed_script = os.path.join(base_dir, alias.seed_script)
        if alias.path is not None and not os.path.isabs(alias.path):
            alias.path = os.path.join(base_dir, alias.path)
        if alias.seed_script is not None and not os.path.isfile(alias.seed_script):
            raise ConfigError(f"seed_script {alias.seed_script!r} not found", file=path,
                              line=lines.line_of((*prefix, "sql", "targets", alias_name, "seed_script")),
                              key=f"{key}.sql.targets.{alias_name}.seed_script")
    sql.target_allow_paths = [p if os.path.isabs(p) else os.path.join(base_dir, p) for p in sql.target_allow_paths]
    sql._collectors = collectors


_RESERVED_OWN = ("probe_success", "probe_duration_seconds")


def check_families(collectors: list[Collector]) -> None:
    """A metric name used twice must mean the same family (type, help, label names), as Go's registry checks."""
    families: dict[str, tuple[str, str, frozenset[str], str]] = {}
    for collector in collectors:
        for metric in collector.metrics:
            name = metric.metric_name
            if name in _RESERVED_OWN or name.startswith("probe_sql_"):
                raise ValueError(f"metric name {name!r} in collector {collector.collector_name} is reserved "
                                 "for the prober's own metrics")
            shape = (metric.type, metric.help, frozenset(metric.label_names()), collector.collector_name)
            previous = families.setdefault(name, shape)
            if previous[:3] != shape[:3]:
                raise ValueError(f"metric {name!r} is defined differently in collectors {previous[3]} and "
                                 f"{collector.collector_name} (type, help and label names must match)")
