# gridshift image: the CLI with every dependency installed.
# Build: docker build -t gridshift .
# Run:   docker run --rm gridshift demo
#        docker run --rm -v "$PWD:/work" gridshift plan /work/request.json -o /work/plan.json
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY optimizer ./optimizer
COPY forecasting ./forecasting
COPY adapters ./adapters
COPY gridshift ./gridshift
COPY protos ./protos
RUN pip install . && useradd --create-home gridshift

USER gridshift
ENTRYPOINT ["gridshift"]
CMD ["demo"]
