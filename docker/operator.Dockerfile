# syntax=docker/dockerfile:1
# The Curbside operator: kopf, the fleet and job loops, the ledger and the dispatcher.
#   docker build -f docker/operator.Dockerfile -t ghcr.io/curbside/operator:0.1.0 .
# Base images are pinned to a patch release; release builds pin them by digest too
# (docker/README.md). The runtime stage has no compiler, no pip cache and runs as 65532.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY api ./api
COPY operator ./operator
RUN python -m venv /opt/curbside \
 && /opt/curbside/bin/pip install ./api ./operator

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="curbside-operator" \
      org.opencontainers.image.source="https://github.com/curbside/curbside" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/curbside /opt/curbside
ENV PATH=/opt/curbside/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The ledger's volume (CURBSIDE_LEDGER_PATH); the chart mounts a PersistentVolumeClaim here.
VOLUME ["/var/lib/curbside"]
EXPOSE 8470 9464 8080
USER 65532:65532
ENTRYPOINT ["curbside-operator"]
CMD ["--liveness=http://0.0.0.0:8080/healthz"]
