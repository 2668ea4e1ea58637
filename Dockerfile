# gridshift image: the gRPC Scheduler service (default) and the CLI, every dependency installed.
# Build: docker build -t gridshift .
# Serve: docker run --rm -p 50051:50051 -p 9100:9100 \
#          -v "$PWD/tls:/etc/gridshift/tls:ro" -v "$PWD/principals.toml:/etc/gridshift/principals.toml:ro" \
#          gridshift
#        (gridshift serve on 0.0.0.0:50051 over TLS with the principals file: a server reachable
#        beyond loopback refuses to start without both, unless GRIDSHIFT_ALLOW_INSECURE=on.
#        tls/ holds server.crt, server.key and ca.crt (the CA that signed server.crt, used by
#        the HEALTHCHECK; for mutual TLS set GRIDSHIFT_CLIENT_CA to the client CA and give the
#        HEALTHCHECK a client certificate with GRIDSHIFT_CLIENT_CERT/KEY). Prometheus metrics
#        on :9100/metrics. HEALTHCHECK asks the gRPC health service, which needs no token.
#        On SIGTERM health turns NOT_SERVING for 2 s, then in-flight calls get up to 30 s
#        (--grace), so stop it with `docker stop -t 35`; docker's default 10 s would cut long
#        solves short. SIGHUP (docker kill -s HUP) re-reads the certificates and principals.)
# CLI:   docker run --rm gridshift demo
#        docker run --rm -v "$PWD:/work" gridshift plan /work/request.json -o /work/plan.json
# The generated gRPC code in gridshift/api/v1 is committed, so the build runs no protoc.
FROM python:3.11-slim

# NUMBA_CACHE_DIR: the solver's compiled kernels (optimizer/insertion_kernels.py),
# compiled once here at build time and loaded from this cache by every process at run time.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 NUMBA_CACHE_DIR=/var/cache/gridshift/numba
WORKDIR /app

COPY pyproject.toml setup.py README.md ./
COPY optimizer ./optimizer
COPY forecasting ./forecasting
COPY adapters ./adapters
COPY gridshift ./gridshift
COPY protos ./protos
RUN pip install . \
    && groupadd --gid 10001 gridshift \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin gridshift \
    && python -c "from gridshift.optimizer import insertion_kernels as k; assert k.kernels()" \
    && chown -R 10001:10001 /var/cache/gridshift

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
ENV GRIDSHIFT_TLS_CERT=/etc/gridshift/tls/server.crt \
    GRIDSHIFT_TLS_KEY=/etc/gridshift/tls/server.key \
    GRIDSHIFT_TOKENS_FILE=/etc/gridshift/principals.toml \
    GRIDSHIFT_CLIENT_CA=/etc/gridshift/tls/ca.crt \
    GRIDSHIFT_CLIENT_SERVER_NAME=localhost \
    GRIDSHIFT_METRICS_HOST=0.0.0.0 GRIDSHIFT_METRICS_PORT=9100
EXPOSE 50051 9100
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["gridshift", "health", "--server", "127.0.0.1:50051"]
ENTRYPOINT ["gridshift"]
CMD ["serve", "--host", "0.0.0.0", "--port", "50051"]
