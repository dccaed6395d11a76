"""Settings, read from the environment only (twelve-factor).

Every variable is listed in README.md's configuration table. Defaults suit a
developer laptop (`make run`); production sets DEBUG=false and the secrets.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
# Local state of a development install: the SQLite file, the file broker.
VAR_DIR = Path(env.str("UNTRACE_VAR_DIR", default=str(BASE_DIR / "var")))

# --- Core -------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-untrace-secret-key-never-use-in-production-0123456789"
SECRET_KEY = env.str("UNTRACE_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("UNTRACE_SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The address users reach this install at, for links in emails.
UNTRACE_PUBLIC_URL = env.str("UNTRACE_PUBLIC_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "csp",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "apps.core",
    "apps.accounts",
    "apps.keys",
    "apps.traces",
    "apps.ingest",
    "apps.proxy",
    "apps.destinations",
    "apps.routing",
    "apps.delivery",
    "apps.billing",
    "apps.budgets",
    "apps.dashboard",
    "apps.audit",
    "apps.privacy",
]

MIDDLEWARE = [
    "apps.core.middleware.RequestMetricsMiddleware",
    "apps.core.middleware.RateLimitHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "untrace.urls"
ASGI_APPLICATION = "untrace.asgi.application"
WSGI_APPLICATION = "untrace.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.dashboard.context_processors.organization_switcher",
            ],
        },
    },
]

# --- Data stores --------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'untrace.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file under `make run`.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# Django's cache holds allauth's rate limits (login, signup, password reset) and used TOTP
# codes, so it must be shared by every web process: Redis (UNTRACE_CACHE_URL, default
# REDIS_URL). "locmem://" keeps it in the process (tests; `make run` without Redis).
UNTRACE_CACHE_URL = env.str("UNTRACE_CACHE_URL", default=REDIS_URL)
if UNTRACE_CACHE_URL.startswith("locmem://"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": UNTRACE_CACHE_URL,
            "KEY_PREFIX": "untrace-cache",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }

# --- Auth ---------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard:home"

ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env.str(
    "UNTRACE_EMAIL_VERIFICATION", default="optional" if DEBUG else "mandatory"
)
ACCOUNT_ADAPTER = "apps.accounts.adapter.AccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
# Per client IP ("ip") or per email address ("key"), kept in the shared cache above.
# A refused login, signup or reset form answers 429; failed logins past their limit are
# refused with "Too many failed login attempts" until the window passes.
ACCOUNT_RATE_LIMITS = {
    "login": "10/m/ip",
    "login_failed": "5/m/ip,5/5m/key",
    "signup": "10/m/ip",
    "reset_password": "5/m/ip,3/m/key",
    "reset_password_from_key": "10/m/ip",
    "change_password": "5/m/user",
    "reauthenticate": "10/m/user",
    "manage_email": "10/m/user",
}
# Two-factor authentication: an authenticator app (TOTP) and single-use recovery codes.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Untrace"
MFA_ADAPTER = "apps.accounts.adapter.MFAAdapter"

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Untrace <no-reply@localhost>")

# --- Security -----------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("UNTRACE_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("UNTRACE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SESSION_COOKIE_SECURE = env.bool("UNTRACE_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# Content-Security-Policy (django-csp) on every page: scripts only from our static files
# (no inline scripts or handlers: static/js/app.js wires confirmations and copy buttons),
# inline styles allowed (htmx's indicator style, chart bars), no framing, and forms may
# only post here or, through our redirects, to Stripe Checkout and the Customer Portal.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'", "https://checkout.stripe.com", "https://billing.stripe.com"],
    }
}
X_FRAME_OPTIONS = "DENY"

# Fernet keys for credentials at rest, newest first; rotate by prepending.
_encryption_keys = env.list("UNTRACE_ENCRYPTION_KEYS", default=[])
if not _encryption_keys:
    if not DEBUG:
        raise ImproperlyConfigured("UNTRACE_ENCRYPTION_KEYS must be set when DEBUG is off.")
    _encryption_keys = [base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()]
UNTRACE_ENCRYPTION_KEYS = _encryption_keys

UNTRACE_ALLOW_PRIVATE_DESTINATIONS = env.bool("UNTRACE_ALLOW_PRIVATE_DESTINATIONS", default=False)
# The deployment's name, offered to routing transformations as `context.environment`.
UNTRACE_ENVIRONMENT = env.str("UNTRACE_ENVIRONMENT", default="production")
# Trust X-Forwarded-For's first hop from any peer (a load balancer that overwrites the
# header); prefer UNTRACE_TRUSTED_PROXIES. Used by every client-address rule (apps.core.client_ip).
UNTRACE_TRUST_X_FORWARDED_FOR = env.bool("UNTRACE_TRUST_X_FORWARDED_FOR", default=False)
# Reverse proxies (addresses or networks, comma separated) whose X-Forwarded-For is believed:
# the client is the right-most address in it that is not one of them. Other peers are the client.
UNTRACE_TRUSTED_PROXIES = env.list("UNTRACE_TRUSTED_PROXIES", default=[])

# --- Rate limits ----------------------------------------------------------------
# Per API key on ingest, the proxy and the API: the plan's limit (apps.billing.plans), or the
# key's own when lower. Off: no per-key limit (per-IP limits below stay).
UNTRACE_RATE_LIMITS_ENABLED = env.bool("UNTRACE_RATE_LIMITS_ENABLED", default=True)
# Per client IP, as COUNT/PERIOD (s, m or h): a bucket of COUNT refilled over PERIOD; "off": none.
UNTRACE_RATE_LIMIT_WEBHOOK_PER_IP = env.str("UNTRACE_RATE_LIMIT_WEBHOOK_PER_IP", default="200/s")
UNTRACE_RATE_LIMIT_STRIPE_WEBHOOK_PER_IP = env.str(
    "UNTRACE_RATE_LIMIT_STRIPE_WEBHOOK_PER_IP", default="100/m"
)
UNTRACE_RATE_LIMIT_INVITATION_PER_IP = env.str("UNTRACE_RATE_LIMIT_INVITATION_PER_IP", default="10/m")
# Requests refused for a bad API key (invalid, revoked, expired) per IP before 429 replaces 401.
UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP = env.str("UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP", default="30/m")
for _name in (
    "UNTRACE_RATE_LIMIT_WEBHOOK_PER_IP",
    "UNTRACE_RATE_LIMIT_STRIPE_WEBHOOK_PER_IP",
    "UNTRACE_RATE_LIMIT_INVITATION_PER_IP",
    "UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP",
):
    if not re.fullmatch(r"\s*(off|none|[1-9][0-9]*/[smh])?\s*", globals()[_name], re.IGNORECASE):
        raise ImproperlyConfigured(
            f"{_name} must be COUNT/s, COUNT/m, COUNT/h or off, not {globals()[_name]!r}."
        )

# --- Privacy ------------------------------------------------------------------
# Key of the HMAC-SHA256 that stands for erased user and session ids in the suppression
# list; keep it stable (a new key forgets earlier suppressions). Default: derived from
# UNTRACE_SECRET_KEY.
UNTRACE_PRIVACY_HASH_KEY = (
    env.str("UNTRACE_PRIVACY_HASH_KEY", default="")
    or hashlib.sha256(f"untrace-privacy:{SECRET_KEY}".encode()).hexdigest()
)
# How long a process reuses a project's suppression list at ingest (erasing clears it
# at once in the erasing process; the route task always reads it fresh).
UNTRACE_SUPPRESSION_CACHE_SECONDS = env.float("UNTRACE_SUPPRESSION_CACHE_SECONDS", default=5.0)

# --- API keys -----------------------------------------------------------------
UNTRACE_KEY_CACHE_SECONDS = env.float("UNTRACE_KEY_CACHE_SECONDS", default=10.0)
UNTRACE_KEY_LAST_USED_INTERVAL = env.float("UNTRACE_KEY_LAST_USED_INTERVAL", default=60.0)
UNTRACE_KEY_ROTATION_GRACE = timedelta(
    seconds=env.int("UNTRACE_KEY_ROTATION_GRACE_SECONDS", default=24 * 3600)
)

# --- Ingest limits -------------------------------------------------------------
# How long spans and delivery records are kept, unless an organization's plan says otherwise.
UNTRACE_RETENTION_DAYS = env.int("UNTRACE_RETENTION_DAYS", default=30)
UNTRACE_MAX_BODY_BYTES = env.int("UNTRACE_MAX_BODY_BYTES", default=10 * 1024 * 1024)
UNTRACE_MAX_BATCH_ITEMS = env.int("UNTRACE_MAX_BATCH_ITEMS", default=1000)
UNTRACE_MAX_STRING_LENGTH = env.int("UNTRACE_MAX_STRING_LENGTH", default=1024 * 1024)
UNTRACE_MAX_DEPTH = env.int("UNTRACE_MAX_DEPTH", default=32)
# Django refuses larger bodies before a view runs; the ingest views answer 413 themselves.
DATA_UPLOAD_MAX_MEMORY_SIZE = UNTRACE_MAX_BODY_BYTES + 1

# --- Proxy ----------------------------------------------------------------------
UNTRACE_OPENAI_UPSTREAM = env.str("UNTRACE_OPENAI_UPSTREAM", default="https://api.openai.com")
UNTRACE_ANTHROPIC_UPSTREAM = env.str("UNTRACE_ANTHROPIC_UPSTREAM", default="https://api.anthropic.com")
UNTRACE_PROXY_CONNECT_TIMEOUT = env.float("UNTRACE_PROXY_CONNECT_TIMEOUT", default=10.0)
# Longest silence between two bytes of an upstream answer (long generations stream slowly).
UNTRACE_PROXY_READ_TIMEOUT = env.float("UNTRACE_PROXY_READ_TIMEOUT", default=600.0)
# Retries before the first byte reached the client, on connect errors and these statuses.
UNTRACE_PROXY_RETRIES = env.int("UNTRACE_PROXY_RETRIES", default=2)
UNTRACE_PROXY_RETRY_STATUSES = [
    int(s) for s in env.list("UNTRACE_PROXY_RETRY_STATUSES", default=["429", "502", "503", "504"])
]
# A Retry-After longer than this is not waited for: the answer goes back to the client.
UNTRACE_PROXY_RETRY_MAX_WAIT = env.float("UNTRACE_PROXY_RETRY_MAX_WAIT", default=5.0)
# Fallback upstreams tried in order when the main one fails (comma-separated base URLs).
UNTRACE_OPENAI_FALLBACK_UPSTREAMS = env.list("UNTRACE_OPENAI_FALLBACK_UPSTREAMS", default=[])
UNTRACE_ANTHROPIC_FALLBACK_UPSTREAMS = env.list("UNTRACE_ANTHROPIC_FALLBACK_UPSTREAMS", default=[])
UNTRACE_PROXY_CIRCUIT_FAILURES = env.int("UNTRACE_PROXY_CIRCUIT_FAILURES", default=5)
UNTRACE_PROXY_CIRCUIT_RESET_SECONDS = env.float("UNTRACE_PROXY_CIRCUIT_RESET_SECONDS", default=30.0)
UNTRACE_PROXY_MAX_CONNECTIONS = env.int("UNTRACE_PROXY_MAX_CONNECTIONS", default=512)
UNTRACE_PROXY_MAX_BODY_BYTES = env.int("UNTRACE_PROXY_MAX_BODY_BYTES", default=64 * 1024 * 1024)
# Off: calls pass through untraced (the trace id header is still set).
UNTRACE_PROXY_CAPTURE = env.bool("UNTRACE_PROXY_CAPTURE", default=True)
# Bodies larger than this are not parsed into the trace (the call itself is unaffected).
UNTRACE_PROXY_CAPTURE_MAX_BYTES = env.int("UNTRACE_PROXY_CAPTURE_MAX_BYTES", default=2 * 1024 * 1024)
UNTRACE_PROXY_QUEUE_SIZE = env.int("UNTRACE_PROXY_QUEUE_SIZE", default=10000)
# Traces of the calls ending within this window are stored together.
UNTRACE_PROXY_FLUSH_INTERVAL = env.float("UNTRACE_PROXY_FLUSH_INTERVAL", default=0.05)
UNTRACE_PROXY_REPLAY_INTERVAL = env.float("UNTRACE_PROXY_REPLAY_INTERVAL", default=5.0)
# Traces that could not be stored wait here until PostgreSQL is back.
UNTRACE_PROXY_SPILL_DIR = Path(env.str("UNTRACE_PROXY_SPILL_DIR", default=str(VAR_DIR / "proxy-spill")))

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.keys.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.keys.permissions.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Untrace API",
    "DESCRIPTION": "Route, sample, redact and deliver LLM traces to any observability platform.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "KeyStatusEnum": ["active", "expired", "revoked"],
        "SpanStatusEnum": ["ok", "error"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.ingest.openapi.add_ingest_endpoints",
        "apps.core.openapi.add_plain_routes",
        "apps.core.openapi.add_error_responses",
    ],
}

# --- Billing --------------------------------------------------------------------
# Without a secret key the billing endpoints answer 501: limits come from the plan set in the admin.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
# Verifies the Stripe-Signature header of POST /billing/stripe/webhook.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# The recurring Stripe prices of the paid plans.
STRIPE_PRICE_GROWTH = env.str("STRIPE_PRICE_GROWTH", default="")
STRIPE_PRICE_SCALE = env.str("STRIPE_PRICE_SCALE", default="")
# Traces above a paid plan's included volume: metered prices attached to the Stripe Billing
# Meter named by STRIPE_METER_EVENT_NAME (aggregation "sum"), added to Checkout next to the
# flat price; empty: overage is counted but not billed.
STRIPE_PRICE_GROWTH_OVERAGE = env.str("STRIPE_PRICE_GROWTH_OVERAGE", default="")
STRIPE_PRICE_SCALE_OVERAGE = env.str("STRIPE_PRICE_SCALE_OVERAGE", default="")
STRIPE_METER_EVENT_NAME = env.str("STRIPE_METER_EVENT_NAME", default="untrace_traces")
# Where the Stripe API is reached (tests point it at a local server).
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
# The plan of an organization that has no billing row yet (a plan code from the admin);
# self-hosted installs without Stripe may pick `enterprise` (no limits).
UNTRACE_DEFAULT_PLAN = env.str("UNTRACE_DEFAULT_PLAN", default="starter")
# How often usage counted in Redis is written to PostgreSQL and quotas are checked.
UNTRACE_USAGE_FLUSH_SECONDS = env.float("UNTRACE_USAGE_FLUSH_SECONDS", default=60.0)
# How often budgets are reconciled from the span table, alerts sent and hard stops published.
UNTRACE_BUDGET_CHECK_SECONDS = env.float("UNTRACE_BUDGET_CHECK_SECONDS", default=60.0)
# Seconds a budget alert webhook may take.
UNTRACE_BUDGET_WEBHOOK_TIMEOUT = env.float("UNTRACE_BUDGET_WEBHOOK_TIMEOUT", default=5.0)

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
# --- Delivery ---
UNTRACE_DELIVERY_TIMEOUT = env.float("UNTRACE_DELIVERY_TIMEOUT", default=30.0)  # seconds per request
UNTRACE_DELIVERY_MAX_AGE_SECONDS = env.int("UNTRACE_DELIVERY_MAX_AGE_SECONDS", default=24 * 3600)
UNTRACE_DELIVERY_MAX_BACKOFF_SECONDS = env.float("UNTRACE_DELIVERY_MAX_BACKOFF_SECONDS", default=300.0)
UNTRACE_DELIVERY_BASE_BACKOFF_SECONDS = env.float("UNTRACE_DELIVERY_BASE_BACKOFF_SECONDS", default=1.0)
# How long new deliveries wait to be sent together with the next ones to the same destination.
UNTRACE_DELIVERY_LINGER_SECONDS = env.float("UNTRACE_DELIVERY_LINGER_SECONDS", default=0.2)
# Deliveries of at least this many spans are sent by the route task at once; smaller ones linger.
UNTRACE_DELIVERY_INLINE_MIN_SPANS = env.int("UNTRACE_DELIVERY_INLINE_MIN_SPANS", default=20)
# The delivery reconciler: how often rows that are due (new, retried, or left by a
# killed worker or a flushed broker) are looked for.
UNTRACE_DELIVERY_SWEEP_SECONDS = env.float("UNTRACE_DELIVERY_SWEEP_SECONDS", default=5.0)
# The routing reconciler: batches stored but not routed after the grace period are enqueued again.
UNTRACE_RECONCILE_INTERVAL_SECONDS = env.float("UNTRACE_RECONCILE_INTERVAL_SECONDS", default=60.0)
UNTRACE_RECONCILE_AFTER_SECONDS = env.float("UNTRACE_RECONCILE_AFTER_SECONDS", default=120.0)
# Ingest answers 429 for a project with more spans than this waiting to be routed or delivered.
UNTRACE_PROJECT_BACKLOG_LIMIT = env.int("UNTRACE_PROJECT_BACKLOG_LIMIT", default=1_000_000)
# When a destination's circuit closes again, replay its dead letters that died of retryable failures.
UNTRACE_DELIVERY_REPLAY_ON_RECOVERY = env.bool("UNTRACE_DELIVERY_REPLAY_ON_RECOVERY", default=True)
UNTRACE_CIRCUIT_FAILURES = env.int("UNTRACE_CIRCUIT_FAILURES", default=5)
UNTRACE_CIRCUIT_RESET_SECONDS = env.float("UNTRACE_CIRCUIT_RESET_SECONDS", default=30.0)

# Delays longer than a few seconds live in PostgreSQL (`next_attempt_at`), never
# in a Celery countdown, so no message waits long in Redis. A task runs at most
# UNTRACE_TASK_TIME_LIMIT; an unacknowledged message is redelivered after the
# visibility timeout, which must be longer (Celery reads it from here only).
UNTRACE_TASK_TIME_LIMIT = env.int("UNTRACE_TASK_TIME_LIMIT", default=600)
UNTRACE_VISIBILITY_TIMEOUT = env.int("UNTRACE_VISIBILITY_TIMEOUT", default=3600)
if UNTRACE_VISIBILITY_TIMEOUT <= UNTRACE_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("UNTRACE_VISIBILITY_TIMEOUT must be longer than UNTRACE_TASK_TIME_LIMIT.")
# A message redelivered more often than this (a task that keeps killing its
# worker) is dropped and logged; the PostgreSQL reconcilers still own its work.
UNTRACE_TASK_MAX_DELIVERIES = env.int("UNTRACE_TASK_MAX_DELIVERIES", default=5)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": UNTRACE_VISIBILITY_TIMEOUT,
    # Fail fast when Redis is down: ingest must answer, the reconciler catches up.
    "socket_connect_timeout": 1,
    "socket_timeout": 2,
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Observability ------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"scrub_secrets": {"()": "apps.core.scrubbing.SecretsFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["scrub_secrets"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

UNTRACE_METRICS_TOKEN = env.str("UNTRACE_METRICS_TOKEN", default="")

SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    from apps.core.scrubbing import SENTRY_DENYLIST, sentry_before_send

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
        send_default_pii=False,
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + SENTRY_DENYLIST, recursive=True),
        before_send=sentry_before_send,
    )

# --- Static and i18n ------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
