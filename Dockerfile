# gridshift image: the gRPC Scheduler service (default) and the CLI, every dependency installed.
# Build: docker build -t gridshift .
# Serve: docker run --rm -p 50051:50051 gridshift
#        (gridshift serve on 0.0.0.0:50051; HEALTHCHECK asks the server's gRPC health service.
#        On SIGTERM the server drains in-flight calls for up to 30 s (--grace), so stop it
#        with `docker stop -t 35`; docker's default 10 s would cut long solves short.)
# CLI:   docker run --rm gridshift demo
#        docker run --rm -v "$PWD:/work" gridshift plan /work/request.json -o /work/plan.json
# The generated gRPC code in gridshift/api/v1 is committed, so the build runs no protoc.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml setup.py README.md ./
COPY optimizer ./optimizer
COPY forecasting ./forecasting
COPY adapters ./adapters
COPY gridshift ./gridshift
COPY protos ./protos
RUN pip install . \
    && groupadd --gid 10001 gridshift \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin gridshift

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 50051
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["gridshift", "health", "--server", "127.0.0.1:50051"]
ENTRYPOINT ["gridshift"]
CMD ["serve", "--host", "0.0.0.0", "--port", "50051"]
