"""One settings module: every deployment differs only by environment variables.

With nothing set, the registry runs on the embedded default (SQLite file under
``var/``, in-process cache, no broker).  ``DATABASE_URL``, ``REDIS_URL`` and
``CELERY_BROKER_URL`` switch to PostgreSQL, Redis and a real broker.  The README's
configuration table lists every variable read here.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ

from agent_registry.core.logging import build_logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

# --- Deployment --------------------------------------------------------------

# "development" (the embedded default), "test" or "production".  Production refuses
# to start with SQLite, DEBUG, or the built-in secret key (see core/checks.py).
APP_ENV = env.str("APP_ENV", default="development")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
INSECURE_DEFAULT_SECRET_KEY = "insecure-embedded-default-change-me-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_DEFAULT_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Only behind a proxy that sets it: otherwise a client could forge its address.
USE_X_FORWARDED_FOR = env.bool("USE_X_FORWARDED_FOR", default=False)
# The port `make run` serves on; the public URL follows it unless set on its own.
PORT = env.int("PORT", default=8000)
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default=f"http://127.0.0.1:{PORT}").rstrip("/")
WIDGET_BASE_URL = env.str("WIDGET_BASE_URL", default=f"{PUBLIC_BASE_URL}/widget").rstrip("/")
# --- Widget (issue 14; agent_registry/widget/, docs/widget.md "Server side") ---------
# WIDGET_BASE_URL above: the folder agent-widget.js is served from (a CDN may hold a copy).
# How long a widget session token lasts; the widget renews it once when it expires.
WIDGET_TOKEN_TTL_SECONDS = env.int("WIDGET_TOKEN_TTL_SECONDS", default=15 * 60)
WIDGET_KEYS_PER_SUBSCRIPTION = env.int("WIDGET_KEYS_PER_SUBSCRIPTION", default=10)
# Each visitor's own rate limit (the gateway's limiter, keyed by visitor), besides the
# subscription's: one visitor cannot spend the whole subscription's rate.
WIDGET_VISITOR_RATE_PER_SECOND = env.int("WIDGET_VISITOR_RATE_PER_SECOND", default=1)
WIDGET_VISITOR_BURST = env.int("WIDGET_VISITOR_BURST", default=5)
# --- end of widget settings ----------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets, served locally (offline docs)
    "auditlog",
    "django_celery_beat",
    "agent_registry.core",
    "agent_registry.tenants",
    "agent_registry.secrets",
    "agent_registry.agents",
    "agent_registry.access",
    "agent_registry.usage",
    "agent_registry.billing",
    "agent_registry.waldur",
    "agent_registry.portal",
    "agent_registry.widget",  # the embeddable chat widget (issue 14)
    "agent_registry.demo",
    # MCP servers as agents: deploy check and the proxy at /mcp/agents/<id> (issue 15).
    "agent_registry.mcp",
]

MIDDLEWARE = [
    "agent_registry.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "agent_registry.core.audit.AuditContextMiddleware",
]

ROOT_URLCONF = "agent_registry.urls"
ASGI_APPLICATION = "agent_registry.asgi.application"
WSGI_APPLICATION = "agent_registry.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------

VAR_DIR.mkdir(exist_ok=True)
(VAR_DIR / "static").mkdir(exist_ok=True)
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the embedded server's threads share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests run on a file like `make run`, not Django's shared-cache in-memory default:
    # that one locks whole tables and refuses a reader at once ("database table is
    # locked", no busy wait) while another thread — the usage writer — is writing.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# --- ops-deploy (issue 16): a bounded PostgreSQL connection pool per process -------------
# Under ASGI each Django request runs in a thread of its own, and a persistent connection
# (CONN_MAX_AGE) belongs to its thread: concurrent requests open a connection each, and
# they outlive the request. `make bench-load` measured 93 connections from one registry
# with 2 uvicorn workers at 250 users, and "too many clients" 500s (docs/performance.md).
# DB_POOL_MAX_SIZE > 0 uses psycopg's pool (Django >= 5.1): at most that many connections
# per process, a request waits up to DB_POOL_TIMEOUT seconds (psycopg's default, 30) for
# one, then fails with a 500.
# The deployments set it (deploy/kubernetes/configmap.yaml, docker-compose.yml).
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=0)
if DB_POOL_MAX_SIZE > 0 and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # a pooled connection goes back after each request
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env.float("DB_POOL_TIMEOUT", default=30.0),
    }
# --- end ops-deploy

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "agent_registry",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# What enforces subscriptions live (block flags, cached snapshots, quota counters): the
# domain announces changes and reads counters through core/live_state.py; this names
# the implementation, so the domain never imports the gateway.
LIVE_STATE = "agent_registry.gateway.live_state.GatewayLiveState"

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_BROKER_CONNECTION_TIMEOUT = 3
# Beat reads its schedule from the database (django-celery-beat; the admin shows each
# job's last run and can pause it). The rows are written from the jobs' schedule
# (core/jobs.py, which the apps' jobs.py fill) by `manage.py sync_schedules` and after
# every `migrate`: no schedule is kept here.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# SCHEDULE's times of day are UTC.
CELERY_TIMEZONE = "UTC"
# Run the scheduled jobs inside the web process (the embedded default; `make run`).
IN_PROCESS_JOBS = env.bool("IN_PROCESS_JOBS", default=False)

# --- Auth ----------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# OIDC (Keycloak): bearer JWTs on the management API are verified against this JWKS.
OIDC_JWKS_URL = env.str("OIDC_JWKS_URL", default="")
OIDC_ISSUER = env.str("OIDC_ISSUER", default="")
OIDC_AUDIENCE = env.str("OIDC_AUDIENCE", default="")
OIDC_ALGORITHMS = env.list("OIDC_ALGORITHMS", default=["RS256", "ES256"])
OIDC_HTTP_TIMEOUT_SECONDS = env.float("OIDC_HTTP_TIMEOUT_SECONDS", default=5.0)

# --- Portal (agent_registry/portal, docs/portal.md) ------------------------------
# Local accounts log in with Django's sessions; Keycloak through OpenID Connect
# (mozilla-django-oidc) when OIDC_RP_CLIENT_ID is set with the provider's endpoints.
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:marketplace"
LOGIN_REDIRECT_URL_FAILURE = "portal:login"
LOGOUT_REDIRECT_URL = "portal:login"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_RP_SIGN_ALGO = env.str("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile")
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default="")
# The same key set the API's bearer tokens are checked against, unless set on its own.
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default=OIDC_JWKS_URL)
OIDC_OP_LOGOUT_ENDPOINT = env.str("OIDC_OP_LOGOUT_ENDPOINT", default="")
OIDC_TIMEOUT = OIDC_HTTP_TIMEOUT_SECONDS
OIDC_VERIFY_SSL = True
PORTAL_OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID and OIDC_OP_AUTHORIZATION_ENDPOINT)
if PORTAL_OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.append("agent_registry.portal.oidc.PortalOIDCBackend")
# Sessions and the CSRF cookie: HttpOnly (Django's default for sessions), SameSite=Lax,
# and Secure in production, where the portal is served over HTTPS only.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=APP_ENV == "production")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
# The portal's own static files (and its vendored assets) are found without a
# collectstatic run outside production: tests and a fresh `make run` serve them alike.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=APP_ENV != "production")

# API keys are stored as HMAC-SHA256 with this pepper; a leaked database alone
# cannot be used to test guesses offline.
API_KEY_PEPPER = env.str("API_KEY_PEPPER", default=SECRET_KEY)
API_KEY_ROTATION_GRACE_SECONDS = env.int("API_KEY_ROTATION_GRACE_SECONDS", default=24 * 3600)

RUNTIME_ALLOW_PRIVATE_NETWORKS = env.bool("RUNTIME_ALLOW_PRIVATE_NETWORKS", default=False)
# Runtime secrets (secrets/): Fernet keys, comma-separated, the first encrypts and all
# decrypt; empty derives a development key from SECRET_KEY (refused in production).
RUNTIME_SECRETS_KEYS = env.list("RUNTIME_SECRETS_KEYS", default=[])
RUNTIME_SECRETS_BACKEND = env.str(
    "RUNTIME_SECRETS_BACKEND", default="agent_registry.secrets.backends.DatabaseBackend"
)
# How long a process keeps a resolved secret (or a miss) in memory; 0 turns caching off.
RUNTIME_SECRETS_CACHE_SECONDS = env.float("RUNTIME_SECRETS_CACHE_SECONDS", default=10.0)

# Bearer token Prometheus presents to /metrics. Empty: /metrics answers loopback
# callers only, and production refuses to start (core/metrics.py, core/checks.py).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Metrics across processes (ops-monitor; docs/operations.md, "Metrics") ---------
# PROMETHEUS_MULTIPROC_DIR (read by prometheus_client from the environment, not from
# here): every worker writes its metrics there. It must exist before the first metric
# is made, which is during setup, so it is made here.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# --- Gateway --------------------------------------------------------------------

GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=1024 * 1024)
# Tokens one call may report (input + output); more is a runtime error, not billed.
GATEWAY_MAX_TOKENS_PER_CALL = env.int("GATEWAY_MAX_TOKENS_PER_CALL", default=10_000_000)
GATEWAY_SNAPSHOT_TTL_SECONDS = env.float("GATEWAY_SNAPSHOT_TTL_SECONDS", default=30.0)
# When Redis is unreachable: "closed" refuses calls (503), "local" falls back to
# per-process limits (approximate across processes).
GATEWAY_LIMITS_ON_REDIS_FAILURE = env.str("GATEWAY_LIMITS_ON_REDIS_FAILURE", default="closed")
# PostgreSQL commit mode of usage batches. "on": a 2xx means the record is on disk.
# "off": it is committed (survives any gateway crash) but a database-server crash may
# lose the last moments of records; saves one disk flush per batch.
USAGE_SYNCHRONOUS_COMMIT = env.bool("USAGE_SYNCHRONOUS_COMMIT", default=True)
# PostgreSQL work_mem of the daily aggregation's transactions (SET LOCAL): it hashes a
# month's records by day and subscription, with each group's latencies for the p95.
USAGE_AGGREGATION_WORK_MEM = env.str("USAGE_AGGREGATION_WORK_MEM", default="256MB")
# A month's billing cycle is finalized this long after the month ends, so records
# still in flight at midnight and a late aggregation run are in it (docs/billing.md).
BILLING_GRACE_PERIOD_HOURS = env.int("BILLING_GRACE_PERIOD_HOURS", default=72)
# The first month (YYYY-MM) the scheduled job bills; empty: every month it looks back
# on. Set it when deploying onto existing usage, so no statements appear for months
# that were billed elsewhere.
BILLING_FIRST_CYCLE = env.str("BILLING_FIRST_CYCLE", default="")
# Where a finalized statement goes to be invoiced (billing/channels.py): each
# subscription's own channel (AgentAccess.billing_channel: a Waldur order's goes to
# "waldur"); one left at "none" goes to BILLING_CHANNEL, the deployment's default
# ("none": free or internal, nothing leaves the registry). Stripe adds its entry later.
BILLING_CHANNEL = env.str("BILLING_CHANNEL", default="none")
BILLING_CHANNELS = {
    "none": "agent_registry.billing.channels.NoneChannel",
    "waldur": "agent_registry.waldur.channel.WaldurChannel",
    "stripe": "agent_registry.billing.stripe.channel.StripeChannel",
}

# --- Waldur (docs/waldur.md) ------------------------------------------------------
# Unset WALDUR_API_URL: the integration is off (no sync, the hook receiver answers 404).
WALDUR_API_URL = env.str("WALDUR_API_URL", default="").rstrip("/")  # without /api
WALDUR_API_TOKEN = env.str("WALDUR_API_TOKEN", default="")
WALDUR_PROVIDER_CUSTOMER_UUID = env.str("WALDUR_PROVIDER_CUSTOMER_UUID", default="")
WALDUR_CATEGORY_UUID = env.str("WALDUR_CATEGORY_UUID", default="")
WALDUR_OFFERING_TYPE = env.str("WALDUR_OFFERING_TYPE", default="Marketplace.Slurm")
# The hook receiver's path secret (/api/v1/webhooks/waldur/<secret>/): Waldur signs nothing.
WALDUR_WEBHOOK_SECRET = env.str("WALDUR_WEBHOOK_SECRET", default="")
# Seconds per call to Waldur, and at most this many calls at once to its host.
WALDUR_TIMEOUT = env.float("WALDUR_TIMEOUT", default=10.0)
WALDUR_MAX_CONCURRENCY = env.int("WALDUR_MAX_CONCURRENCY", default=4)

# --- Stripe (docs/billing.md "Stripe") -------------------------------------------------
# Unset STRIPE_API_KEY_SECRET: the integration is off (no checkout, the webhook receiver
# answers 404, the jobs skip); paid plans are sold through Waldur or by an operator.
STRIPE_API_KEY_SECRET = env.str("STRIPE_API_KEY_SECRET", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
# The signing secret of the webhook endpoint (whsec_…): every event is verified with it.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Seconds an event's signature timestamp may be old (Stripe's own default is 300).
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Stripe's API; tests and the demo point it at the fake (tests/fakes/stripe.py).
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com").rstrip("/")
# A past-due subscription keeps being served this long, then the gateway answers 402.
STRIPE_PAST_DUE_GRACE_HOURS = env.int("STRIPE_PAST_DUE_GRACE_HOURS", default=72)
# Seconds per call to Stripe, and retries of a failed call (the client's own backoff;
# every write carries an idempotency key, so a retry never doubles anything).
STRIPE_TIMEOUT = env.float("STRIPE_TIMEOUT", default=10.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# Where Checkout sends the customer back ({CHECKOUT_SESSION_ID} is Stripe's placeholder):
# the portal's subscriptions page by default.
STRIPE_CHECKOUT_SUCCESS_URL = env.str(
    "STRIPE_CHECKOUT_SUCCESS_URL",
    default=f"{PUBLIC_BASE_URL}/portal/subscriptions/?session_id={{CHECKOUT_SESSION_ID}}",
)
STRIPE_CHECKOUT_CANCEL_URL = env.str(
    "STRIPE_CHECKOUT_CANCEL_URL", default=f"{PUBLIC_BASE_URL}/portal/subscriptions/"
)

# --- API -----------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agent_registry.core.authentication.OperatorTokenAuthentication",
        "agent_registry.core.authentication.OIDCAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["agent_registry.core.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "agent_registry.core.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "agent_registry.core.error_envelope.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=1024 * 1024)

SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Registry API",
    "DESCRIPTION": (
        "Register, price and list AI agents; subscribe customers and issue API keys. "
        "Errors use one envelope: "
        '`{"error": {"code", "message", "request_id", "details"?}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "AgentStateEnum": "agent_registry.agents.models.AgentState",
        "TenantRoleEnum": "agent_registry.tenants.models.TenantRole",
        "AccessStatusEnum": "agent_registry.access.models.AccessStatus",
    },
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "tokenAuth": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Token <operator token>`",
            },
            "oidcBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        }
    },
    "SECURITY": [{"tokenAuth": []}, {"oidcBearer": []}],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "agent_registry.gateway.openapi.add_gateway_paths",
    ],
    "AUTHENTICATION_WHITELIST": [],
    # Swagger UI from drf-spectacular-sidecar's static files, not a CDN: /api/docs/
    # works offline and loads no third-party script.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No badge fetched from validator.swagger.io either.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
}

# --- Audit ----------------------------------------------------------------------

AUDITLOG_CID_GETTER = "agent_registry.core.request_id.current_request_id"
AUDITLOG_DISABLE_REMOTE_ADDR = False
AUDITLOG_STORE_JSON_CHANGES = True

# --- Static files, i18n --------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploaded files (training documents): on the local disk under var/media unless a
# storage backend is configured in STORAGES["default"]. Never served as static files.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "media/"
# Training documents (access/documents.py). An upload is one request body, so the
# size limit must stay below MAX_REQUEST_BODY_BYTES (the multipart framing adds a little).
TRAINING_DOCUMENT_MAX_BYTES = env.int("TRAINING_DOCUMENT_MAX_BYTES", default=1_000_000)
TRAINING_DOCUMENT_EXTENSIONS = env.list(
    "TRAINING_DOCUMENT_EXTENSIONS", default=["pdf", "txt", "md", "docx"]
)
TRAINING_DOCUMENTS_PER_SUBSCRIPTION = env.int("TRAINING_DOCUMENTS_PER_SUBSCRIPTION", default=50)
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging: one JSON object per line, each with the request id ---------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = build_logging_config(LOG_LEVEL)
