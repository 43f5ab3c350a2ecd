"""blackbox_exporter's per-prober blocks (`http:`, `tcp:`, `dns:`, `icmp:`, `grpc:`, `unix:`, `websocket:`).

Field names, defaults and load-time validation follow blackbox_exporter's config/config.go and
prometheus/common's HTTPClientConfig, which the `http:` block inlines.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from probe_exporter.config.cel import CELProgram
from probe_exporter.config.tls import TLSConfig
from probe_exporter.config.types import Base2Bytes, GoDuration, RawBytes, Regex, Secret, StrictModel, format_go_duration
from probe_exporter.probers.net.hostport import ip_literal, split_host_port

# --- our opt-in additions to blackbox's blocks -----------------------------------------------------


class OptInFields(StrictModel):
    """Keys blackbox_exporter does not have: left at their defaults they stay out of /config and debug
    output, so a module that does not use them renders exactly as before."""

    @model_serializer(mode="wrap")
    def _omit_unused_opt_ins(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in OPT_IN_DEFAULTS.keys() & data.keys():
            if getattr(self, name) == OPT_IN_DEFAULTS[name]:
                del data[name]
        return data


DNS_PORT = 53


@dataclass(frozen=True)
class Nameserver:
    address: str
    port: int

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


def parse_server(text: str) -> Nameserver:
    """`10.0.0.53`, `10.0.0.53:53`, `fd00::53` or `[fd00::53]:53`; a ValueError names a bad entry."""
    try:
        host, port = split_host_port(text, default_port=str(DNS_PORT))
        literal = ip_literal(host)
        address, number = ("", 0) if literal is None else (str(literal), int(port))
    except ValueError:  # HostPortError too
        address, number = "", 0
    if not address or not 0 < number <= 65535:
        raise ValueError(f"dns_server {text!r} is not an IP address with an optional port "
                         "(10.0.0.53, 10.0.0.53:53, [fd00::53]:53)")
    return Nameserver(address, number)


def _check_server(server: str) -> str:
    parse_server(server)  # raises ValueError naming the bad entry
    return server


class ResolverSettings(OptInFields):
    """A resolver per module (the keys of blackbox_exporter's open PRs #1443/#1542): the target's name
    is looked up at these DNS servers, in order, instead of through the system resolver."""

    dns_server: list[Annotated[str, AfterValidator(_check_server)]] = Field(default_factory=list)
    # Per server; upstream's PR defaults it to 3s. The probe deadline bounds the whole lookup anyway.
    dns_timeout: GoDuration = 3.0

    @field_validator("dns_server", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


    @field_validator("dns_timeout")
    @classmethod
    def _check_dns_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("dns_timeout must be greater than 0")
        return value


# smokeping_prober's default buckets (50us doubling to 26s), so its dashboards read our histogram too.
DEFAULT_RTT_BUCKETS = [5e-05 * 2**i for i in range(20)]
# Sequence numbers are 16 bits: a longer burst could not tell its replies apart.
MAX_ICMP_PACKETS = 65535
OPT_IN_DEFAULTS: dict[str, Any] = {"dns_server": [], "dns_timeout": 3.0, "packets": 1, "packet_interval": 0.1,
                                   "rtt_buckets": DEFAULT_RTT_BUCKETS}

# --- prometheus/common HTTPClientConfig ------------------------------------------------------------


class BasicAuth(StrictModel):
    username: str | None = None
    username_file: str | None = None
    username_ref: str | None = None
    password: Secret | None = None
    password_file: str | None = None
    password_ref: str | None = None

    @model_validator(mode="after")
    def _check(self) -> BasicAuth:
        if sum(bool(x) for x in (self.username, self.username_file, self.username_ref)) > 1:
            raise ValueError("at most one of basic_auth username, username_file & username_ref must be configured")
        if sum(bool(x) for x in (self.password, self.password_file, self.password_ref)) > 1:
            raise ValueError("at most one of basic_auth password, password_file & password_ref must be configured")
        return self


class Authorization(StrictModel):
    type: str = "Bearer"
    credentials: Secret | None = None
    credentials_file: str | None = None
    credentials_ref: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Authorization:
        if self.type.lower() == "basic":
            raise ValueError('authorization type cannot be set to "basic", use "basic_auth" instead')
        if self.credentials and self.credentials_file:
            raise ValueError("at most one of authorization credentials & credentials_file must be configured")
        return self


class ProxyConfig(StrictModel):
    proxy_url: str | None = None
    no_proxy: str | None = None
    proxy_from_environment: bool = False
    proxy_connect_header: dict[str, list[Secret]] | None = None


class OAuth2(ProxyConfig):
    client_id: str | None = None
    client_secret: Secret | None = None
    client_secret_file: str | None = None
    client_secret_ref: str | None = None
    client_certificate_key_id: str | None = None
    client_certificate_key: Secret | None = None
    client_certificate_key_file: str | None = None
    client_certificate_key_ref: str | None = None
    grant_type: str | None = None
    signature_algorithm: str | None = None
    iss: str | None = None
    audience: str | None = None
    claims: dict[str, Any] | None = None
    scopes: list[str] | None = None
    token_url: str | None = None
    endpoint_params: dict[str, str] | None = None
    tls_config: TLSConfig = Field(default_factory=TLSConfig)


class Header(StrictModel):
    values: list[str] | None = None
    secrets: list[Secret] | None = None
    files: list[str] | None = None


# Headers prometheus/common refuses in http_headers, because the client owns them.
_RESERVED_HEADERS = {name.lower() for name in (
    "Authorization", "Host", "Content-Encoding", "Content-Length", "Content-Type", "User-Agent", "Connection",
    "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Www-Authenticate", "Accept-Encoding",
    "X-Prometheus-Remote-Write-Version", "X-Prometheus-Remote-Read-Version", "X-Prometheus-Scrape-Timeout-Seconds",
    "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256")}


class HTTPClientConfig(ProxyConfig):
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    oauth2: OAuth2 | None = None
    bearer_token: Secret | None = None
    bearer_token_file: str | None = None
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    follow_redirects: bool = True
    enable_http2: bool = True
    http_headers: dict[str, Header] | None = None

    @model_validator(mode="after")
    def _check_client(self) -> HTTPClientConfig:
        if self.bearer_token and self.bearer_token_file:
            raise ValueError("at most one of bearer_token & bearer_token_file must be configured")
        auths = [self.basic_auth, self.authorization, self.oauth2,
                 self.bearer_token or self.bearer_token_file or None]
        if sum(a is not None for a in auths) > 1:
            raise ValueError("at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured")
        for name in self.http_headers or {}:
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"setting header {name!r} is not allowed")
        if self.proxy_from_environment and (self.proxy_url or self.no_proxy):
            raise ValueError("if proxy_from_environment is configured, proxy_url and no_proxy must not be configured")
        if self.no_proxy and not self.proxy_url:
            raise ValueError("if no_proxy is configured, proxy_url must also be configured")
        return self


# --- blackbox probe blocks -------------------------------------------------------------------------


class HeaderMatch(StrictModel):
    header: str = ""
    regexp: Regex | None = None
    allow_missing: bool = False

    @model_validator(mode="after")
    def _check(self) -> HeaderMatch:
        if not self.header:
            raise ValueError("header name must be set for HTTP header matchers")
        if self.regexp is None or not self.regexp.pattern:
            raise ValueError("regexp must be set for HTTP header matchers")
        return self


class HTTPProbe(HTTPClientConfig, ResolverSettings):
    valid_status_codes: list[int] = Field(default_factory=list)
    valid_http_versions: list[str] = Field(default_factory=list)
    ip_protocol_fallback: bool = True
    preferred_ip_protocol: str = ""
    skip_resolve_phase_with_proxy: bool = False
    no_follow_redirects: bool | None = Field(default=None, exclude=True)
    fail_if_ssl: bool = False
    fail_if_not_ssl: bool = False
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    fail_if_body_matches_regexp: list[Regex] = Field(default_factory=list)
    fail_if_body_not_matches_regexp: list[Regex] = Field(default_factory=list)
    fail_if_body_json_matches_cel: CELProgram | None = None
    fail_if_body_json_not_matches_cel: CELProgram | None = None
    fail_if_header_matches: list[HeaderMatch] = Field(default_factory=list)
    fail_if_header_not_matches: list[HeaderMatch] = Field(default_factory=list)
    body: str | None = None
    body_file: str | None = None
    compression: str = ""
    body_size_limit: Base2Bytes = 0
    enable_http3: bool = False
    # Send the module's credentials on after a redirect to another origin (scheme, host, port), as
    # blackbox_exporter does. Off by default: a redirect must not hand them to whoever it points at.
    follow_redirects_with_credentials: bool = False

    @field_validator("headers", mode="before")
    @classmethod
    def _headers_as_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "" if v is None else str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check_probe(self) -> HTTPProbe:
        if self.no_follow_redirects is not None:
            self.follow_redirects = not self.no_follow_redirects
        if self.body and self.body_file:
            raise ValueError("setting body and body_file both are not allowed")
        if self.compression:
            for name, value in self.headers.items():
                if name.lower() == "accept-encoding" and not accepts_encoding(value, self.compression):
                    raise ValueError(f'invalid configuration "{name}: {value}", "compression: {self.compression}"')
        # blackbox's order: the versions first, then HTTP/2.
        if not self.enable_http3 and "HTTP/3.0" in self.valid_http_versions:
            raise ValueError("HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false")
        if self.enable_http3:
            if any(v in ("HTTP/2.0", "HTTP/1.1") for v in self.valid_http_versions):
                raise ValueError("HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed "
                                 "when enable_http3 is true")
            if self.enable_http2:
                raise ValueError("when enable_http3 is true, enable_http2 must be set to false")
        return self


def accepts_encoding(accept_encoding: str, encoding: str) -> bool:
    """blackbox's isCompressionAcceptEncodingValid: the best-quality entry naming `encoding` (exactly,
    case included) or `*` must have q > 0; an empty compression or Accept-Encoding is always fine."""
    if not encoding or not accept_encoding:
        return True
    best: float | None = None
    for part in accept_encoding.split(","):
        name, separator, quality_text = part.rpartition(";")
        if not separator:
            name, quality = quality_text, 1.0
        else:
            quality_text = quality_text.strip().removeprefix("q=")
            try:
                quality = round(float(quality_text), 3)
            except ValueError:
                quality = 0.0
        if name.strip() in (encoding, "*") and (best is None or quality > best):
            best = quality
    return best is not None and best > 0


class Label(StrictModel):
    name: str
    value: str


class QueryResponse(StrictModel):
    expect: Regex | None = None
    expect_bytes: RawBytes | None = None
    send: RawBytes | None = None
    starttls: bool = False
    labels: list[Label] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> QueryResponse:
        if self.expect is not None and self.expect_bytes is not None:
            raise ValueError("expect and expect_bytes are mutually exclusive")
        return self


class TCPProbe(ResolverSettings):
    ip_protocol_fallback: bool = True
    preferred_ip_protocol: str = ""
    source_ip_address: str | None = None
    query_response: list[QueryResponse] = Field(default_factory=list)
    tls: bool = False
    tls_config: TLSConfig = Field(default_factory=TLSConfig)

    @field_validator("source_ip_address")
    @classmethod
    def _check_source(cls, value: str | None) -> str | None:
        return _check_ip(value)


class UnixProbe(StrictModel):
    query_response: list[QueryResponse] = Field(default_factory=list)
    tls: bool = False
    tls_config: TLSConfig = Field(default_factory=TLSConfig)


class ICMPProbe(ResolverSettings):
    ip_protocol_fallback: bool = True
    preferred_ip_protocol: str = ""
    source_ip_address: str | None = None
    payload_size: int = 0
    dont_fragment: bool = False
    ttl: int = 64
    # Burst mode (ours): `packets` echo requests `packet_interval` apart; 1 is blackbox's single echo.
    packets: int = 1
    packet_interval: GoDuration = 0.1
    # Upper bounds of probe_icmp_rtt_seconds, the per-probe histogram of a burst's round-trip times.
    rtt_buckets: list[float] = Field(default_factory=lambda: list(DEFAULT_RTT_BUCKETS))

    @field_validator("packets")
    @classmethod
    def _check_packets(cls, value: int) -> int:
        if not 1 <= value <= MAX_ICMP_PACKETS:
            raise ValueError(f'"packets" must be between 1 and {MAX_ICMP_PACKETS}')
        return value

    @field_validator("packet_interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        if value <= 0:
            raise ValueError('"packet_interval" must be greater than 0')
        return value

    @field_validator("rtt_buckets")
    @classmethod
    def _check_buckets(cls, buckets: list[float]) -> list[float]:
        if not buckets or any(b <= a for a, b in itertools.pairwise(buckets)) or buckets[0] <= 0:
            raise ValueError('"rtt_buckets" must be positive and strictly increasing')
        return buckets

    def burst_seconds(self) -> float:
        """The time a burst needs: each packet, the last one included, gets one interval to be answered."""
        return self.packets * self.packet_interval

    def check_burst_fits(self, module_timeout: float) -> None:
        """Refuse at load a burst the module timeout cannot hold (0: no module timeout to check against)."""
        # The tolerance keeps float rounding (3 x 0.1s) from refusing a burst that fits exactly.
        if self.packets > 1 and 0 < module_timeout < self.burst_seconds() - 1e-9:
            raise PydanticCustomError(
                "icmp_burst_too_long",
                "{packets} packets every {interval} take {needed}, longer than the module timeout {timeout}; "
                "lower packets or packet_interval, or raise timeout",
                {"packets": self.packets, "interval": format_go_duration(self.packet_interval),
                 "needed": format_go_duration(self.burst_seconds()),
                 "timeout": format_go_duration(module_timeout), "within_key": "packets"})

    @field_validator("ttl")
    @classmethod
    def _check_ttl(cls, value: int) -> int:
        if value < 0:
            raise ValueError('"ttl" cannot be negative')
        if value > 255:
            raise ValueError('"ttl" cannot exceed 255')
        return value

    @field_validator("source_ip_address")
    @classmethod
    def _check_source(cls, value: str | None) -> str | None:
        return _check_ip(value)


class DNSRRValidator(StrictModel):
    fail_if_matches_regexp: list[str] = Field(default_factory=list)
    fail_if_all_match_regexp: list[str] = Field(default_factory=list)
    fail_if_not_matches_regexp: list[str] = Field(default_factory=list)
    fail_if_none_matches_regexp: list[str] = Field(default_factory=list)


# miekg/dns StringToClass, and the StringToType names dnspython does not know (name -> number).
DNS_QUERY_CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}
MIEKG_ONLY_TYPES = {"NSAP-PTR": 23, "EID": 31, "NIMLOC": 32, "ATMA": 34, "NINFO": 56, "RKEY": 57, "TALINK": 58,
                    "UINFO": 100, "UID": 101, "GID": 102, "UNSPEC": 103, "DOA": 259}


class DNSProbe(StrictModel):
    ip_protocol_fallback: bool = True
    preferred_ip_protocol: str = ""
    source_ip_address: str | None = None
    transport_protocol: str = ""
    dns_over_tls: bool = False
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    query_class: str = "IN"
    query_name: str = ""
    query_type: str = "ANY"
    recursion_desired: bool = True
    valid_rcodes: list[str] = Field(default_factory=list)
    validate_answer_rrs: DNSRRValidator = Field(default_factory=DNSRRValidator)
    validate_authority_rrs: DNSRRValidator = Field(default_factory=DNSRRValidator)
    validate_additional_rrs: DNSRRValidator = Field(default_factory=DNSRRValidator)

    @model_validator(mode="after")
    def _check(self) -> DNSProbe:
        if not self.query_name:
            raise ValueError("query name must be set for DNS module")
        # miekg's StringToClass / StringToType: exact (upper-case) mnemonics; "" means the default.
        if self.query_class and self.query_class not in DNS_QUERY_CLASSES:
            raise ValueError(f"query class '{self.query_class}' is not valid")
        if self.query_type and not _known_dns_type(self.query_type):
            raise ValueError(f"query type '{self.query_type}' is not valid")
        return self


def _known_dns_type(name: str) -> bool:
    import dns.rdatatype

    if name != name.upper() or name.startswith("TYPE"):  # no generic TYPEnnn in miekg's table
        return False
    if name in MIEKG_ONLY_TYPES:
        return True
    try:
        dns.rdatatype.from_text(name)
    except Exception:
        return False
    return True


class GRPCProbe(ResolverSettings):
    service: str = ""
    tls: bool = False
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    ip_protocol_fallback: bool = True
    preferred_ip_protocol: str = ""
    metadata: dict[str, list[str]] = Field(default_factory=dict)


class WebsocketProbe(ResolverSettings):
    ip_protocol_fallback: bool = True
    preferred_ip_protocol: str = ""
    query_response: list[QueryResponse] = Field(default_factory=list)
    http_config: HTTPClientConfig = Field(default_factory=HTTPClientConfig)
    headers: dict[str, Header] = Field(default_factory=dict)


def _check_ip(value: str | None) -> str | None:
    import ipaddress

    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"invalid source_ip_address {value!r}") from None
    return value
