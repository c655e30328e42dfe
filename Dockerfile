# llm-sidecar: the OpenAI-compatible sidecar, as a slim non-root image.
#   docker build -t llm-sidecar .
#   docker run --rm -p 8787:8787 -e OPENAI_API_KEY llm-sidecar
# The same image runs the simulated upstream: `docker run llm-sidecar mock-upstream --host 0.0.0.0`.

# --- build: install the package and its dependencies into a virtualenv -----------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Only what the package build reads (see .dockerignore): source edits do not bust other layers.
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
RUN /opt/venv/bin/pip install .

# --- runtime: the virtualenv, no compilers, no pip cache ------------------------------------------
FROM python:3.11-slim-bookworm
# tini as PID 1: the kernel delivers no SIGTERM to a PID 1 without a handler, so without it
# `docker stop` (and Kubernetes) would wait out the whole grace period and then SIGKILL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sidecar \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/llm-sidecar --create-home sidecar
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The default SQLite usage database (sqlite:///sidecar-usage.db) and its journal land here,
# writable by the sidecar user; mount a volume to keep them, or set DATABASE_URL.
WORKDIR /var/lib/llm-sidecar
USER 10001:10001
EXPOSE 8787
# Liveness only (/healthz has no dependencies); readiness (/readyz) is for orchestrators to poll.
# Python's urllib, so the image needs no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["tini", "--", "llm-sidecar"]
CMD ["serve", "--host", "0.0.0.0"]
