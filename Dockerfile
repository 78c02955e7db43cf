# The production image: `docker build .` builds the runtime (the last stage).
# docs/image.md explains every choice; tests/image proves them.

# Both stages start from this tag (a minor version: 3.13 gets its patch releases).
ARG PYTHON_IMAGE=python:3.13-slim-trixie

# --- builder: wheels for every locked requirement ---------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# A compiler for the requirements that publish no wheel for this platform; it never reaches the
# runtime. Unpinned: the Debian release pinned in the base tag already fixes the versions.
# apt's lists and downloads live in cache mounts shared with the runtime stage (never in a
# layer); Debian's docker-clean hook would delete the cached downloads after each install.
# hadolint ignore=DL3008
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean \
    && apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev

COPY requirements/base.txt /tmp/requirements.txt
# The cache mount keeps downloads between builds, so changing one requirement fetches only it.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --disable-pip-version-check --require-hashes --wheel-dir /wheels \
        --requirement /tmp/requirements.txt

# --- runtime --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# GUNICORN_PORT is the image's port, defined here only: EXPOSE, gunicorn's bind and the health
# probe read it. Not a setting: nginx's upstream must name the same port (docs/image.md).
# GUNICORN_METRICS_PORT is gunicorn's second port, where Prometheus reads /metrics
# (config/metrics.py): not exposed (`docker run -P` would publish it), nginx never proxies to it.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PATH=/opt/venv/bin:$PATH \
    GUNICORN_PORT=8000 \
    GUNICORN_METRICS_PORT=8001

# tini is PID 1 so plain `docker run` forwards signals and reaps zombies (compose's init: true
# is then unnecessary). The same apt cache mounts as the builder's.
# hadolint ignore=DL3008
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean \
    && apt-get update \
    && apt-get install --yes --no-install-recommends tini

# Installed from the builder's wheels only, with the network switched off (no index, no cache
# left behind); the hashes were checked when the builder downloaded them. No pip inside the
# virtualenv.
RUN --network=none \
    --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --disable-pip-version-check --no-cache-dir \
        --no-index --no-deps /wheels/*.whl \
    && pip --python /opt/venv/bin/python check

# The app user, and the folders of the volumes it writes: media, and the site it publishes for
# nginx (a new named volume copies the ownership of the folder it is mounted on).
ARG APP_UID=10001
ARG APP_GID=10001
RUN groupadd --gid "${APP_GID}" app \
    && useradd --uid "${APP_UID}" --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && install --directory --owner app --group app --mode 0755 /srv/media /srv/site

# Code last, owned by root: the app user can read it but not change it.
WORKDIR /app
COPY manage.py ./
COPY config ./config
COPY app ./app
COPY scripts ./scripts
# How nginx serves this release; scripts/publish_release.py hands them to nginx with the
# static files below.
COPY nginx/templates ./nginx/templates
RUN python -m compileall -q /app \
    && DJANGO_BUILD_STATIC=1 python manage.py collectstatic --noinput --verbosity 0

# Numeric, so orchestrators can verify it is not root without reading /etc/passwd.
USER ${APP_UID}:${APP_GID}
EXPOSE ${GUNICORN_PORT}
# Liveness only (no database), through a probe that does not import Django. gunicorn binds only
# after the entrypoint has waited for PostgreSQL (DATABASE_WAIT_TIMEOUT, 60 s), for another
# container's migrations (DJANGO_MIGRATE_LOCK_TIMEOUT, 300 s) and run its own: the 10-minute
# start period covers that. It costs nothing when the start is quick: probes run every 2 s
# meanwhile and the first success ends it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --start-interval=2s --retries=3 \
    CMD ["python", "/app/scripts/healthcheck.py"]
ENTRYPOINT ["tini", "--", "/app/scripts/entrypoint"]
CMD ["gunicorn", "--config", "python:config.gunicorn"]

# The release's version (tools/ops passes it; config/release.py says what it may be). Last, so a
# new version rebuilds nothing above.
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=
ENV APP_VERSION=${VERSION}
LABEL org.opencontainers.image.title="catcollector-web" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
