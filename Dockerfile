# The registry's production image: web (uvicorn), Celery worker and beat, and the
# migrations Job all run this one image with different commands (docker-compose.yml,
# deploy/kubernetes/). Build where a registry is reachable (docs/operations.md "Deploy"):
#   docker build -t agent-registry:$(git rev-parse --short HEAD) .
# tests/deploy/test_dockerfile.py checks that its commands name real modules.

# --- builder: the locked dependencies into a venv ------------------------------------
FROM python:3.11-slim AS builder

# Compilers only here, for a locked package without a wheel for this platform; they
# never reach the final image (only the venv is copied).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
# --require-hashes: exactly the artefacts of the lock, nothing resolved at build time.
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.lock

# --- final: the venv, the code, static files; no compilers, not root --------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=agent_registry.settings \
    APP_ENV=production \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    MEDIA_ROOT=/data/media

# A fixed uid/gid, so Kubernetes' runAsUser and volume ownership can name it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY --chown=root:root . /app

# Static files are collected once, at build, into var/static (settings.STATIC_ROOT);
# whitenoise serves them, so the root file system can be read-only at run time.
# APP_ENV=development only for this step: production's checks want secrets a build
# has no business knowing. var/ stays root-owned and read-only to the app user.
RUN APP_ENV=development python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /data/media && chown app:app /data/media

USER 10001:10001
EXPOSE 8000

# /health/live answers without touching PostgreSQL or Redis: a slow database must not
# get the container restarted (readiness, /health/ready, is the orchestrator's job).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=4)"]

# uvicorn reads its worker count from WEB_CONCURRENCY (the default of --workers) and any
# other option from UVICORN_<OPTION>; `sh -c` only expands PORT, `exec` leaves uvicorn
# as PID 1 so it gets the orchestrator's SIGTERM. No access log: the registry writes one
# JSON line per request itself. Idle keep-alive connections are kept 75 s, longer than a
# load balancer's or client's idle timeout (60 s is common): the peer closes first, so a
# request is never sent on a connection the server is closing (uvicorn's 5 s default
# dropped 189 of ~11,000 calls in the 1,000-user load test, docs/performance.md).
CMD ["sh", "-c", "exec uvicorn agent_registry.asgi:application --host 0.0.0.0 --port \"${PORT}\" --loop uvloop --http httptools --timeout-keep-alive 75 --no-access-log"]
