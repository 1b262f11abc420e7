# dagwatch's image: `docker build -t dagwatch .`, then mount a config at /etc/dagwatch/dagwatch.yaml
# (docker-compose.yml does; deploy/dagwatch.yaml is the stack's).
#
# Two stages: the build stage turns the source into a virtualenv (a wheel built with setuptools);
# the runtime stage copies only that venv, so no source tree, pip cache or build backend ships.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/dagwatch
WORKDIR /src
# Only what the package is built from (the .dockerignore allowlist keeps everything else out).
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY checks ./checks
COPY runbooks ./runbooks
# The postgres extra brings psycopg (binary wheel: no libpq or compiler in the image).
RUN /opt/dagwatch/bin/pip install --no-cache-dir ".[postgres]"

FROM python:${PYTHON_VERSION}-slim-bookworm
# In a container the server must listen on 0.0.0.0, the container's own interface (loopback
# inside it is unreachable from other containers and from the published port). What is exposed
# on the host is decided where the port is published: the compose file binds 127.0.0.1 only.
ENV PATH=/opt/dagwatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGWATCH_DATA_DIR=/var/lib/dagwatch \
    DAGWATCH_SERVER__HOST=0.0.0.0 \
    DAGWATCH_SERVER__PORT=8000
# A fixed uid/gid, so volumes and the files in them have a predictable owner. /run/dagwatch is for
# files shared with other containers (the compose stack's pipelines read their API token there).
RUN groupadd --system --gid 10001 dagwatch \
    && useradd --system --uid 10001 --gid dagwatch --home-dir /var/lib/dagwatch --shell /usr/sbin/nologin dagwatch \
    && mkdir -p /var/lib/dagwatch /run/dagwatch /etc/dagwatch \
    && chown dagwatch:dagwatch /var/lib/dagwatch /run/dagwatch
COPY --from=build /opt/dagwatch /opt/dagwatch
USER 10001:10001
WORKDIR /var/lib/dagwatch
EXPOSE 8000
# Ready = the store answers and the collectors' scheduler runs (GET /readyz, 503 otherwise).
# python's urllib, because the slim image has no curl; an HTTP error or no answer exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('DAGWATCH_SERVER__PORT', '8000'), timeout=4)"]
CMD ["dagwatch", "up", "--config", "/etc/dagwatch/dagwatch.yaml"]
