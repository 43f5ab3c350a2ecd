# syntax=docker/dockerfile:1
# probe_exporter container image.
#
#   docker build -t probe-exporter:0.1.0 .
#   docker run -d -p 10115:10115 probe-exporter:0.1.0
#   docker run -d -p 10115:10115 -v $PWD/my-modules:/etc/probe_exporter:ro probe-exporter:0.1.0
# (docs/deployment.md has the whole guide: TLS, basic auth and the health check, Kubernetes.)
#
# ICMP: the exporter uses unprivileged ICMP datagram sockets, which work for any user whose group is
# in the kernel's net.ipv4.ping_group_range. Docker (20.10+) sets that range to all groups inside a
# container by default; elsewhere pass `--sysctl net.ipv4.ping_group_range="0 2147483647"`.
# Only if you need raw ICMP sockets (e.g. the range cannot be set on your host), add
# `--cap-add=NET_RAW`; nothing else in the exporter needs a capability.

# --- build: wheels of the exporter and its runtime dependencies, every prober's extra (no test tools) ---
FROM python:3.11-slim AS build
# A C compiler for the SNMP prober's optional C parts (probers/snmp/_berfast.c, _renderfast.c); only this
# stage has it.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY probe_exporter/ probe_exporter/
COPY modules/ modules/
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels '.[all]'

# --- runtime: only the installed wheels, the shipped modules and an unprivileged user -----------
FROM python:3.11-slim
LABEL org.opencontainers.image.title="probe_exporter" \
      org.opencontainers.image.description="Prometheus multi-target probe exporter: HTTP, TCP, DNS, ICMP, gRPC, SNMP, SQL" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric UID/GID, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10115 probe_exporter \
 && useradd --system --uid 10115 --gid 10115 --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin probe_exporter

# The wheels are bind-mounted from the build stage, so they never become a layer of this image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --no-index --find-links=/wheels 'probe-exporter[all]'

# Modules baked in, owned by root and read-only for the exporter; mount your own over this directory.
COPY modules/ /etc/probe_exporter/
# Fail the build, not the first start, if the baked-in modules do not load.
RUN probe-exporter --config.check --config.file='/etc/probe_exporter/*.yml'

# Bytecode was compiled at install time; the root filesystem may be read-only at run time. The SQLite
# demo database is built under XDG_CACHE_HOME, which must be writable (an emptyDir on /tmp in Kubernetes).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/cache

USER 10115:10115
EXPOSE 10115
# The exporter's own check: it reads the flags the container was started with (PID 1's), so it follows
# --web.listen-address and --web.config.file (TLS, basic auth). With basic auth, pass the credentials as
# PROBE_EXPORTER_HEALTHCHECK_USERNAME and PROBE_EXPORTER_HEALTHCHECK_PASSWORD_FILE (else a 401 counts as alive).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["probe-exporter", "healthcheck"]
ENTRYPOINT ["probe-exporter"]
# The exporter expands the glob itself (exec form: no shell involved).
CMD ["--config.file=/etc/probe_exporter/*.yml"]
