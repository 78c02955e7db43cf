"""Django settings, all read from the environment (.env.example lists them; docs/image.md,
Configuration and settings).

Every default is the production value. Bad or missing configuration raises ConfigurationError,
which the entry points print as one line naming the variable to fix.
"""

import atexit
import re
import secrets
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import quote

from config.container import (
    SERVED_BY,
    available_cpus,
    gunicorn_workers,
    memory_limit,
    tmpfs_size,
)
from config.env import Env
from config.errors import ConfigurationError, install_excepthook
from config.hosts import HOST_PATTERN
from config.logging import logging_config

install_excepthook()
env = Env()

BASE_DIR = Path(__file__).resolve().parent.parent

# Image build only: `collectstatic` needs settings but no secret and no database. Every other
# entry point refuses to start while this is set (manage.py, wsgi.py, asgi.py, config.gunicorn).
BUILD_STATIC_ONLY = env.boolean("DJANGO_BUILD_STATIC", default=False)

DEBUG = env.boolean("DJANGO_DEBUG", default=False)


# --- Secret key -----------------------------------------------------------------------------

SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_DISTINCT = 5
STRONG_KEY_ADVICE = (
    f"a random string of at least {SECRET_KEY_MIN_LENGTH} characters, e.g. the output of "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(64))'"
)


def secret_key_weakness(key: str) -> str | None:
    """Why Django's deploy check (security.W009) would call this key weak, if it would."""
    if key.startswith("django-insecure-"):
        return "it is a generated development key"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"it is only {len(key)} characters long"
    if len(set(key)) < SECRET_KEY_MIN_DISTINCT:
        return f"it has fewer than {SECRET_KEY_MIN_DISTINCT} distinct characters"
    return None


def read_secret_keys() -> tuple[str, list[str]]:
    if BUILD_STATIC_ONLY:
        # Nothing signed during the build outlives it, so a throwaway key is enough.
        return secrets.token_urlsafe(64), []
    key = env.secret("DJANGO_SECRET_KEY")
    if key is None:
        raise ConfigurationError(
            "DJANGO_SECRET_KEY is not set; set it (or DJANGO_SECRET_KEY_FILE) to "
            + STRONG_KEY_ADVICE
        )
    fallbacks = [k.strip() for k in (env.secret("DJANGO_SECRET_KEY_FALLBACKS") or "").split(",")]
    fallbacks = [k for k in fallbacks if k]
    if not DEBUG:
        for name, value in [("DJANGO_SECRET_KEY", key)] + [
            ("DJANGO_SECRET_KEY_FALLBACKS", k) for k in fallbacks
        ]:
            weakness = secret_key_weakness(value)
            if weakness:
                raise ConfigurationError(
                    f"{env.secret_source(name)} is too weak ({weakness}); use {STRONG_KEY_ADVICE}"
                )
    return key, fallbacks


SECRET_KEY, SECRET_KEY_FALLBACKS = read_secret_keys()


# --- Hosts, proxy and HTTPS -----------------------------------------------------------------

ORIGIN_PATTERN = re.compile(
    r"https?://(\*\.)?[A-Za-z0-9_.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def read_allowed_hosts() -> list[str]:
    hosts = env.strings("DJANGO_ALLOWED_HOSTS")
    for host in hosts:
        if not HOST_PATTERN.fullmatch(host):
            raise ConfigurationError(
                f"DJANGO_ALLOWED_HOSTS entry {host!r} is not a host name; list bare names "
                "without scheme, port or path, e.g. cats.example.com,.example.org"
            )
    if not hosts and not DEBUG and not BUILD_STATIC_ONLY:
        raise ConfigurationError(
            "DJANGO_ALLOWED_HOSTS is not set; set it to the host names this site answers to, "
            "comma-separated, e.g. cats.example.com"
        )
    return hosts


def read_trusted_origins() -> list[str]:
    origins = env.strings("DJANGO_CSRF_TRUSTED_ORIGINS")
    for origin in origins:
        if not ORIGIN_PATTERN.fullmatch(origin):
            raise ConfigurationError(
                f"DJANGO_CSRF_TRUSTED_ORIGINS entry {origin!r} is not an origin; use scheme and "
                "host with no path, e.g. https://cats.example.com"
            )
    return origins


ALLOWED_HOSTS = read_allowed_hosts()
# Same-origin form posts pass without this list: Django compares Origin with the request's own
# scheme and Host. It is only for other origins allowed to post here.
CSRF_TRUSTED_ORIGINS = read_trusted_origins()

# Trust model: nginx is the only hop that talks to Django and it always overwrites
# X-Forwarded-Proto (with its own scheme, or with the load balancer's value when the LB is in
# its trusted ranges), so a client cannot choose it. This is the only place the scheme is
# decided: gunicorn and uvicorn read no proxy header (config.gunicorn). Host is likewise set
# by nginx; X-Forwarded-Host and -Port are ignored (Django's defaults).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.boolean("DJANGO_TRUST_X_FORWARDED_PROTO", default=True)
    else None
)

SECURE_SSL_REDIRECT = env.boolean("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.integer(
    "DJANGO_SECURE_HSTS_SECONDS", 31_536_000, minimum=0, maximum=63_072_000
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.boolean("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.boolean("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.boolean("DJANGO_SECURE_COOKIES", default=True)

CHECK_ID_PATTERN = re.compile(r"\w+(\.\w+)*\.[CEWI]\d{3}")


def read_silenced_checks() -> list[str]:
    # Django ignores ids it does not know, so a typo would silence nothing without a word.
    checks = env.strings("DJANGO_SILENCED_SYSTEM_CHECKS")
    for check in checks:
        if not CHECK_ID_PATTERN.fullmatch(check):
            raise ConfigurationError(
                f"DJANGO_SILENCED_SYSTEM_CHECKS entry {check!r} is not a check id "
                "like security.W008"
            )
    return checks


# The HSTS subdomain and preload flags commit every subdomain (and, for preload, browsers'
# built-in lists, which take months to leave) to HTTPS: a decision for the domain's owner, so
# they are off by default and their deploy-check warnings are silenced until switched on.
SILENCED_SYSTEM_CHECKS = [
    *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
    *read_silenced_checks(),
]


# --- Database -------------------------------------------------------------------------------

DATABASE_CONNECT_TIMEOUT = env.integer("DATABASE_CONNECT_TIMEOUT", 5, minimum=1, maximum=300)
DB_CONNECTIONS = env.choice("DJANGO_DB_CONNECTIONS", "pool", ("pool", "persistent", "per-request"))
DB_POOL_MAX_SIZE = env.integer("DJANGO_DB_POOL_MAX_SIZE", 10, minimum=1, maximum=1000)
# How long a request of a wsgi worker waits for a database connection (below): longer than
# opening one takes, even with TLS to a managed database.
DB_POOL_WAIT_S = 0.25


def wsgi_threads() -> int | None:
    """The threads of the gunicorn wsgi worker this process is (config.container.SERVED_BY),
    or None: manage.py's commands, the worker and uvicorn's workers keep the pool's defaults."""
    served_by = env.raw(SERVED_BY) or ""
    match served_by.split():
        case ["wsgi", threads] if threads.isdigit():
            return int(threads)
        case []:
            return None
    raise ConfigurationError(f"{SERVED_BY}={served_by!r} is config/gunicorn.py's to set; unset it")


def read_database() -> dict:
    from_url = env.database_url("DATABASE_URL")
    host = env.raw("POSTGRES_HOST")
    if from_url and host:
        raise ConfigurationError("DATABASE_URL and POSTGRES_HOST are both set; set only one")
    if from_url:
        database = from_url
    elif host:
        user = env.string("POSTGRES_USER", "postgres")
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": host,
            "PORT": env.integer("POSTGRES_PORT", 5432, minimum=1, maximum=65535),
            "USER": user,
            # The postgres image names the database after the user unless told otherwise.
            "NAME": env.string("POSTGRES_DB", user),
            "PASSWORD": env.secret("POSTGRES_PASSWORD") or "",
        }
    else:
        raise ConfigurationError(
            "no database configured; set DATABASE_URL, or POSTGRES_HOST with POSTGRES_DB, "
            "POSTGRES_USER and POSTGRES_PASSWORD"
        )
    options = database.setdefault("OPTIONS", {})
    options["connect_timeout"] = DATABASE_CONNECT_TIMEOUT
    database["CONN_HEALTH_CHECKS"] = True
    # Pool by default: as fast as persistent connections under WSGI, and the only one of the
    # three that reuses connections under ASGI (tests/benchmarks/db_connections.py).
    if DB_CONNECTIONS == "pool":
        database["CONN_MAX_AGE"] = 0
        options["pool"] = {
            # One warm connection per process; the pool grows on demand and shrinks back
            # after psycopg's idle limit, so idle replicas hold few server sessions.
            "min_size": 1,
            "max_size": DB_POOL_MAX_SIZE,
            # How long a request waits for a free connection (or for a new one to be made).
            "timeout": DATABASE_CONNECT_TIMEOUT,
            # After an outage the pool retries with a doubling pause (1, 2, 4 s...) for this
            # long, then starts over with an immediate attempt at the next request. Kept at
            # the wait above (lower, a request still waiting would time out).
            "reconnect_timeout": DATABASE_CONNECT_TIMEOUT,
        }
        threads = wsgi_threads()
        if threads is not None:
            # A wsgi worker holds at most `threads` connections, and its pool is opened
            # before it serves (config/gunicorn.py, post_worker_init): a request waits for a
            # connection only while PostgreSQL does not answer. It waits DB_POOL_WAIT_S, not
            # DATABASE_CONNECT_TIMEOUT, so the requests queued behind it, /healthz included,
            # move on at once, and a waiter leaving lets the next request start a new
            # reconnection attempt: requests succeed again about a second after PostgreSQL
            # answers (tests/faults/test_outages.py).
            options["pool"]["timeout"] = options["pool"]["reconnect_timeout"] = DB_POOL_WAIT_S
        if threads is not None and threads > 1:
            # gthread: a connection per thread, kept (the pool grows only for a waiting
            # request), and at most threads - 1 waiting: one thread stays free for /healthz.
            options["pool"]["min_size"] = threads
            options["pool"]["max_waiting"] = threads - 1
    elif DB_CONNECTIONS == "persistent":
        # Reused for up to ten minutes, with a health check before the first query of a request.
        database["CONN_MAX_AGE"] = 600
    else:
        database["CONN_MAX_AGE"] = 0
    return database


# Build mode has no database on purpose: anything that tries to query fails loudly.
DATABASES = {} if BUILD_STATIC_ONLY else {"default": read_database()}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Applications ---------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "app.health",
    "app.cats",
]

MIDDLEWARE = [
    # Scrapes on the metrics port only (config.metrics); every other request passes through.
    "config.metrics.MetricsEndpointMiddleware",
    "config.middleware.RequestIdMiddleware",
    # Probes are answered here, before host validation and the HTTPS redirect can refuse them.
    "app.health.middleware.HealthCheckMiddleware",
    # Counts and times the rest (config.metrics).
    "config.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it answers a locked-out sign-in.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
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

# --- Signing in -----------------------------------------------------------------------------

# Where a sign-in without a usable `next` lands (Django's default, /accounts/profile/, is a 404).
LOGIN_REDIRECT_URL = "cats:list"

# A password check costs about 0.2 s of CPU (PBKDF2), also for unknown users. nginx limits
# sign-in POSTs per client address (NGINX_LOGIN_RATE), so one client cannot take the CPU;
# django-axes limits guesses per account and client: after DJANGO_LOGIN_FAILURE_LIMIT failures
# that pair is refused (429, templates/429.html, no password check) for
# DJANGO_LOGIN_LOCKOUT_MINUTES. Not per account alone: anyone could then lock the admin out.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.integer("DJANGO_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=100)
AXES_COOLOFF_TIME = timedelta(
    minutes=env.integer("DJANGO_LOGIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=1440)
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "config.middleware.client_address"
AXES_LOCKOUT_TEMPLATE = "429.html"
AXES_RESET_ON_SUCCESS = True
# Sign-ins are in the JSON logs already; a table row per success would only grow.
AXES_DISABLE_ACCESS_LOG = True
# No banner at every process start; failures and lockouts are still logged.
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True


# --- Static and media files -----------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", "/srv/static")
MEDIA_URL = "/media/"
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", "/srv/media")
STORAGES = {
    # Removes what a failed save wrote; a full volume is StorageFull, a 507 for the form.
    "default": {"BACKEND": "config.storage.MediaStorage"},
    # Hashed names (immutable caching) plus .gz siblings that whitenoise and nginx serve.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# nginx runs as another user and serves /media/ straight from the volume.
FILE_UPLOAD_PERMISSIONS = 0o644
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o755

# One number for the whole stack: nginx's client_max_body_size reads the same variable. At
# most 100: uploads are spooled to web's 256 MB /tmp tmpfs (and buffered in nginx's), which
# must hold a few at once.
UPLOAD_MAX_MB = env.integer("UPLOAD_MAX_MB", 10, minimum=1, maximum=100)
UPLOAD_MAX_BYTES = UPLOAD_MAX_MB * 1024 * 1024


# --- Photo checks ----------------------------------------------------------------------------
# Checking an upload decodes it, which can take far more memory than its file: the checks share
# the memory that web's limit leaves once everything else is counted (app/cats/photos.py divides
# it into slots; docs/operations.md, Sizing). Everything else, at its worst: each gunicorn worker
# (60 MB, measured without preloading; tests/benchmarks/worker_footprint.py), the /tmp tmpfs
# (uploads being received count against the limit) and 100 MB spare (the small checks that need
# no slot, uploads held in memory).
WORKER_MEMORY_BYTES = 60 * 1024 * 1024
SPARE_MEMORY_BYTES = 100 * 1024 * 1024


def photo_check_memory(processes: int, process_bytes: int) -> int:
    """What this container's memory limit leaves the photo slots once `processes` of
    `process_bytes` each, the /tmp tmpfs and the spare are counted."""
    return max(
        0,
        memory_limit()
        - processes * process_bytes
        - tmpfs_size("/tmp")  # noqa: S108 (reads its size)
        - SPARE_MEMORY_BYTES,
    )


# web's: gunicorn's workers. The worker's is CELERY_PHOTO_CHECK_MEMORY_BYTES (below); each is
# worked out in every container, and read only in its own.
PHOTO_CHECK_MEMORY_BYTES = photo_check_memory(gunicorn_workers(env), WORKER_MEMORY_BYTES)
# The slots are files on this tmpfs, private to the container (app/cats/slots.py).
PHOTO_CHECK_SLOT_DIR = "/dev/shm"  # noqa: S108 (a tmpfs of the container's own)
# How long a check waits for a slot (a check takes well under a second; a request waiting here
# holds a gunicorn thread) and, after a 503, the Retry-After it suggests.
PHOTO_CHECK_WAIT_SECONDS = 5


# --- Background work: thumbnails (compose.worker.yaml; docs/operations.md, Background work) --
# With REDIS_HOST set, web queues each new photo's thumbnail for the worker (Celery, Redis as the
# broker); unset, web makes it in the request that stored the photo (app.cats.thumbnails).
REDIS_HOST = env.raw("REDIS_HOST")
THUMBNAILS_QUEUED = REDIS_HOST is not None and not BUILD_STATIC_ONLY
# The official redis image's port.
REDIS_PORT = 6379


def read_broker_url() -> str | None:
    if not THUMBNAILS_QUEUED:
        return None
    password = env.secret("REDIS_PASSWORD")
    if password is None:
        raise ConfigurationError(
            "REDIS_HOST is set but REDIS_PASSWORD_FILE is not; compose.worker.yaml sets both "
            "(init-secrets generates the password)"
        )
    return f"redis://:{quote(password, safe='')}@{REDIS_HOST}:{REDIS_PORT}/0"


CELERY_BROKER_URL = read_broker_url()
# A task is acknowledged once it has finished, so one whose process is killed midway (or
# whose worker stops before finishing it) is delivered again; tasks must be idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message per pool process at a time: a long task never holds others back behind it, and a
# stopping worker has nothing reserved to hand back.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers a message not acknowledged within this (a worker killed outright, with no
# chance to hand its tasks back). Above the longest task and the longest retry delay below:
# Redis would otherwise deliver a waiting retry a second time.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 300,
    # web answers the upload either way (it makes the thumbnail itself when Redis does not
    # answer): so it waits briefly.
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The worker keeps retrying a lost broker; web never waits for it (app.cats.tasks.queue).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task running when the broker connection drops would be delivered again and run twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# A thumbnail takes well under 2 s (docs/operations.md); these only stop a stuck one.
CELERY_TASK_SOFT_TIME_LIMIT = 20
CELERY_TASK_TIME_LIMIT = 30
# Fire and forget: nothing reads a task's result (the row records the thumbnail).
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# JSON only: a message of any other content type is refused, never unpickled.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
# On SIGTERM (docker stop, a deploy) the worker waits this long for its tasks, then hands the
# unfinished ones back to the queue (the container sets REMAP_SIGTERM=SIGQUIT; compose's
# stop_grace_period is above it).
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = 15
# Thumbnails are CPU-bound: one process per CPU the container may use (its quota).
CELERY_WORKER_CONCURRENCY = env.integer(
    "CELERY_WORKER_CONCURRENCY", available_cpus(), minimum=1, maximum=64
)
# Django's logging (JSON lines) stays; Celery adds no handler of its own (config.celery).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Memory a pool process counts for when the worker sizes its photo slots (measured: docs).
CELERY_PROCESS_MEMORY_BYTES = 80 * 1024 * 1024
# The worker container's memory for photo slots: its pool's processes and the main one
# (config.celery refuses a --concurrency that differs from CELERY_WORKER_CONCURRENCY).
CELERY_PHOTO_CHECK_MEMORY_BYTES = photo_check_memory(
    CELERY_WORKER_CONCURRENCY + 1, CELERY_PROCESS_MEMORY_BYTES
)


# --- Monitoring (docs/operations.md, Monitoring) --------------------------------------------

# gunicorn's second port, where Prometheus reads /metrics (config.metrics); the image sets it
# (Dockerfile), beside GUNICORN_PORT. Unset (Django outside the image), /metrics is nowhere.
METRICS_PORT = (
    env.integer("GUNICORN_METRICS_PORT", 0, minimum=1, maximum=65535)
    if env.raw("GUNICORN_METRICS_PORT") is not None
    else None
)
# The release this container runs: the image's version (Dockerfile, APP_VERSION).
RELEASE = env.string("APP_VERSION", "unknown")


# --- Errors: mail to the admins, Sentry (docs/operations.md, Monitoring) --------------------
# Both off by default. With DJANGO_ADMINS set, an unhandled error (a 500) is mailed to them,
# the request id in the mail's first line (config.logging: once per kind of error and process
# every MAIL_INTERVAL_S). With DJANGO_SENTRY_DSN set, it goes to Sentry too (config.sentry).

MAIL_ADDRESS = re.compile(r"[^@\s<>,\"]+@[^@\s<>,\"]+")
MAIL_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
# How SMTP is secured: STARTTLS on the submission port, TLS from the start, or not at all.
EMAIL_SECURITY = {"starttls": (True, False), "ssl": (False, True), "none": (False, False)}


def read_admins() -> list[tuple[str, str]]:
    admins = []
    for entry in env.strings("DJANGO_ADMINS"):
        name, address = parseaddr(entry)
        if not MAIL_ADDRESS.fullmatch(address):
            raise ConfigurationError(
                f"DJANGO_ADMINS entry {entry!r} is not a mail address; list them "
                "comma-separated as Name <address> or address, e.g. Ops <ops@example.org>"
            )
        admins.append((name, address))
    return admins


def read_mail_address(name: str) -> str | None:
    value = env.raw(name)
    if value is not None and not MAIL_ADDRESS.fullmatch(value.strip()):
        raise ConfigurationError(f"{name}={value!r} is not a mail address like cats@example.org")
    return value and value.strip()


def read_mail_host() -> str | None:
    host = env.raw("DJANGO_EMAIL_HOST")
    if host is not None and not MAIL_HOST.fullmatch(host):
        raise ConfigurationError(
            f"DJANGO_EMAIL_HOST={host!r} is not a host name; name the SMTP server alone, e.g. "
            "smtp.example.org (its port: DJANGO_EMAIL_PORT)"
        )
    return host


ADMINS = read_admins()
SERVER_EMAIL = read_mail_address("DJANGO_SERVER_EMAIL")
EMAIL_HOST = read_mail_host()
EMAIL_PORT = env.integer("DJANGO_EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = env.raw("DJANGO_EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env.secret("DJANGO_EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS, EMAIL_USE_SSL = EMAIL_SECURITY[
    env.choice("DJANGO_EMAIL_SECURITY", "starttls", tuple(EMAIL_SECURITY))
]
# The mail is sent inside the failing request: a mail server that does not answer holds it
# this long at most, well within gunicorn's timeout.
EMAIL_TIMEOUT = 10
EMAIL_SUBJECT_PREFIX = "[catcollector] "
if bool(EMAIL_HOST_USER) != bool(EMAIL_HOST_PASSWORD):
    raise ConfigurationError(
        "DJANGO_EMAIL_HOST_USER and DJANGO_EMAIL_HOST_PASSWORD (or _FILE) go together; set "
        "both to sign in to the SMTP server, or neither"
    )
if ADMINS and EMAIL_HOST is None:
    raise ConfigurationError(
        "DJANGO_ADMINS is set but DJANGO_EMAIL_HOST is not; errors are mailed through an "
        "SMTP server: set DJANGO_EMAIL_HOST (and DJANGO_EMAIL_PORT, DJANGO_EMAIL_HOST_USER...)"
    )
if ADMINS and SERVER_EMAIL is None:
    raise ConfigurationError(
        "DJANGO_ADMINS is set but DJANGO_SERVER_EMAIL is not; set the address error mails "
        "come from, e.g. cats@example.org"
    )

SENTRY_DSN = env.raw("DJANGO_SENTRY_DSN")
if SENTRY_DSN is not None and not BUILD_STATIC_ONLY:
    # Imported here, so Sentry's SDK loads only where a DSN asks for it.
    from config.sentry import start_sentry

    start_sentry(SENTRY_DSN, release=RELEASE)


# --- Logging --------------------------------------------------------------------------------

LOG_LEVEL = env.choice(
    "DJANGO_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
)
LOGGING = logging_config(LOG_LEVEL)


# --- At exit --------------------------------------------------------------------------------
# Last, so it is registered only for settings that loaded: every process closes its database
# pool while the pool's threads still run (config.pools says why).
def close_pools_at_exit() -> None:
    from config.pools import close_pools  # noqa: PLC0415 (django.db needs these settings)

    close_pools()


if DB_CONNECTIONS == "pool":
    atexit.register(close_pools_at_exit)
