"""Django settings. Everything configurable is read from the environment here, in one typed place."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from caredesk.config.database import database_settings, direct_database

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _env_bool("CAREDESK_DEBUG", False)
# No fallback: a key everybody can read in our source would let anyone forge sessions. `caredesk demo` generates
# one per data directory; everything else must be given one (see README, Configuration).
SECRET_KEY = os.environ.get("CAREDESK_SECRET_KEY", "").strip()
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "CAREDESK_SECRET_KEY is not set. Set it to a long random string (for example the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`) and keep it the same across restarts "
        "and machines; `caredesk demo` makes one for you in its data directory."
    )
# Fernet keys for connector credentials at rest, newest first; older ones still decrypt, so keys can rotate
# (`caredesk keys rotate` re-encrypts every row with the newest). Empty: derived from SECRET_KEY (the demo).
CAREDESK_CREDENTIALS_KEYS = [k.strip() for k in os.environ.get("CAREDESK_CREDENTIALS_KEYS", "").split(",") if k.strip()]
ALLOWED_HOSTS = [h for h in os.environ.get("CAREDESK_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CAREDESK_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # PostgreSQL's index operator classes (the subject's trigram index) and lookups (trigram search, issue 12).
    "django.contrib.postgres",
    "procrastinate.contrib.django",
    "servestatic",  # system checks of the static-file settings below
    "ninja",  # django-ninja's bundled Swagger UI assets (no CDN for /api/docs)
    "caredesk.accounts",
    "caredesk.connectors",
    "caredesk.cases",
    "caredesk.ingest",
    "caredesk.triage",
    "caredesk.outbox",
    "caredesk.inbox",
    "caredesk.api",
    "caredesk.jobs",
    "caredesk.retention",
    "axes",  # login throttling (django-axes)
]

MIDDLEWARE = [
    "caredesk.ops.logs.RequestIdMiddleware",
    "caredesk.config.security.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, as django-axes asks: it refuses a locked-out username and IP before a password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: after 5 failed logins for one username from one address, that pair is refused for 15 minutes,
# even with the right password; a successful login resets the count.
AXES_FAILURE_LIMIT = int(os.environ.get("CAREDESK_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("CAREDESK_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "inbox/locked_out.html"
AXES_VERBOSE = False

# CAREDESK_HTTPS=1 behind TLS: cookies only over HTTPS, and browsers told to use HTTPS for a year (HSTS).
HTTPS = _env_bool("CAREDESK_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if HTTPS and _env_bool("CAREDESK_BEHIND_PROXY", False):
    # Only behind a proxy that sets this header itself; otherwise a client could claim HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

ROOT_URLCONF = "caredesk.config.urls"
ASGI_APPLICATION = "caredesk.config.asgi.application"

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

DATABASES = database_settings(os.environ)
# Where the live stream's LISTEN connection goes when DATABASE_URL is a transaction pooler (None: the default).
CAREDESK_DIRECT_DATABASE = direct_database(os.environ)
# Reads inside caredesk.config.replica.replica_reads() go to the "replica" alias when DATABASE_REPLICA_URL is set.
DATABASE_ROUTERS = ["caredesk.config.replica.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# Only needed for `collectstatic` behind a separate web server; ServeStatic serves the app folders directly.
STATIC_ROOT = os.environ.get("CAREDESK_STATIC_ROOT") or None

PROCRASTINATE_AUTODISCOVER_MODULE_NAME = "tasks"

# How often the worker asks each connector installation for new posts (seconds).
CAREDESK_POLL_INTERVAL = float(os.environ.get("CAREDESK_POLL_INTERVAL", "2"))
# While an installation listens by webhook, a cheap catch-up poll this often (seconds) picks up a missed delivery.
CAREDESK_CATCHUP_POLL_SECONDS = float(os.environ.get("CAREDESK_CATCHUP_POLL_SECONDS", "900"))
# A rung of the listening ladder that failed (a refused stream) is tried again after this long (seconds), doubled
# for each failure in a row, at most a day.
CAREDESK_RUNG_RETRY_SECONDS = float(os.environ.get("CAREDESK_RUNG_RETRY_SECONDS", "3600"))
# How long a reply may stay sending (or queued without a job) before the sweeper settles it: longer than a send's
# HTTP timeout (20 s), so a slow send is never taken for a dead one.
CAREDESK_REPLY_LEASE_SECONDS = float(os.environ.get("CAREDESK_REPLY_LEASE_SECONDS", "120"))
# The most events the live stream replays to a reconnecting browser; beyond it the page reloads its state instead.
CAREDESK_STREAM_REPLAY_LIMIT = int(os.environ.get("CAREDESK_STREAM_REPLAY_LIMIT", "10000"))

# CAREDESK_LOG_FORMAT=json: one JSON object a line, with the request id and installation at hand
# (caredesk.ops.logs), for a log shipper; the default is plain lines for a person at a terminal. Request lines
# (caredesk.request: method, path, status, ms) are logged in JSON only (a terminal needs no line per request).
CAREDESK_LOG_FORMAT = os.environ.get("CAREDESK_LOG_FORMAT", "plain").strip().lower()
if CAREDESK_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"CAREDESK_LOG_FORMAT must be plain or json, got {CAREDESK_LOG_FORMAT!r}")
_LOG_LEVEL = os.environ.get("CAREDESK_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "caredesk.ops.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": CAREDESK_LOG_FORMAT}},
    "loggers": {
        "caredesk": {"handlers": ["console"], "level": _LOG_LEVEL},
        "caredesk.request": {"level": "INFO" if CAREDESK_LOG_FORMAT == "json" else "WARNING"},
        "procrastinate": {"handlers": ["console"], "level": "WARNING"},
        # A request that fails (500) with its traceback: Django's default sends these only to the admins' mail.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # uvicorn's own messages (startup, errors) in the same format when it is JSON (cli.server hands
        # uvicorn no log config of its own then).
        "uvicorn": {"handlers": ["console"] if CAREDESK_LOG_FORMAT == "json" else [], "level": "WARNING"},
    },
}

# Static files ship inside the package (htmx, css) and are served by ServeStatic straight from the app folders,
# so `caredesk serve` needs no collectstatic step and nothing comes from a CDN. ServeStatic is WhiteNoise's
# ASGI-capable fork: its middleware is async and streams files with an async iterator, where WhiteNoise's sync
# FileResponse made Django's ASGI handler warn ("StreamingHttpResponse must consume synchronous iterators") and
# read each file whole on a worker thread.
SERVESTATIC_USE_FINDERS = True
SERVESTATIC_AUTOREFRESH = DEBUG
