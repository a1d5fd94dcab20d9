# syntax=docker/dockerfile:1
# The Curbside node agent (one per car): signals, interlock, Lease heartbeat, status reports.
#   docker build -f docker/agent.Dockerfile -t ghcr.io/curbside/agent:0.1.0 .
# Only the base dependencies (pydantic, httpx, PyYAML, cryptography, prometheus-client): the
# agent needs neither kopf nor torch. Pinned base, non-root (65532), no build tools at run time.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY api ./api
COPY agent ./agent
RUN python -m venv /opt/curbside \
 && /opt/curbside/bin/pip install ./api ./agent

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="curbside-agent" \
      org.opencontainers.image.source="https://github.com/curbside/curbside" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/curbside /opt/curbside
ENV PATH=/opt/curbside/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["curbside-agent"]
CMD ["--help"]
