"""dicomsvc settings: every value comes from the environment (see README "Settings").

Defaults let a fresh clone run with nothing configured: the embedded PostgreSQL server that
``scripts/run.sh`` starts (``dicomsvc.embedded_db``) and a filesystem Celery broker, both under
``var/``. Set DATABASE_URL / REDIS_URL for your own Postgres and Redis in production.
"""

import logging
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dicomsvc import allocator, embedded_db
from dicomsvc.env import env_bool, env_float, env_int, env_json, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DICOMSVC_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

logger = logging.getLogger("dicomsvc.settings")

# --- core -------------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    # A fresh clone must run with nothing configured: keep a generated key beside the data so
    # sessions and signed tokens survive restarts. Production sets SECRET_KEY (or SECRET_KEY_FILE).
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "worklist",
    "exams",
    "callbacks",
    "viewer",
    "ups",
    "dimse",
    "dicomweb",
    "ohif",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestLogMiddleware",
    "core.middleware.RequestRulesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dicomsvc.urls"
WSGI_APPLICATION = "dicomsvc.wsgi.application"
APPEND_SLASH = False

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
            ],
        },
    },
]

# PostgreSQL only. Unset: the embedded server of this var directory (a Unix socket in var/run; see
# dicomsvc/embedded_db.py), which scripts/run.sh starts.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", embedded_db.database_url(VAR_DIR)),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        f"DATABASE_URL must be a PostgreSQL URL (postgres://...), not {DATABASES['default']['ENGINE']}"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# 24-hour dates and times to the second in the console (dicomsvc/formats/en/formats.py).
FORMAT_MODULE_PATH = ["dicomsvc.formats"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Collected static files (admin, Swagger UI, viewer), served by WhiteNoise. The image sets it outside
# the data volume (/app/staticfiles), so an upgraded image never serves an old copy.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024, minimum=1024)

# --- API, auth and audit -----------------------------------------------------------------------
API_AUTH_DISABLED = env_bool("API_AUTH_DISABLED", False)
if API_AUTH_DISABLED:
    logger.warning(
        "API_AUTH_DISABLED=true: every API endpoint is open to anyone who can reach it. "
        "Only run like this behind a gateway that authenticates every request."
    )
AUDIT_ENABLED = env_bool("AUDIT_ENABLED", True)
# WADO-RS frame reads: one AuditEvent per actor, client address and study per this many seconds and
# process (core.audit.audit_request_once); 0 writes one per frame request.
AUDIT_FRAMES_WINDOW_SECONDS = env_int("AUDIT_FRAMES_WINDOW_SECONDS", 60, minimum=0, maximum=3600)
# core.audit: the audit row of a read (a QIDO-RS search, a WADO-RS retrieve) commits without waiting
# for the WAL flush (synchronous_commit off for that one INSERT): a database crash may lose the last
# fraction of a second of read records; never changes, which commit with their work.
AUDIT_READS_ASYNC_COMMIT = env_bool("AUDIT_READS_ASYNC_COMMIT", False)
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 10, minimum=0, maximum=300)
# Deepest nesting of arrays/objects a JSON request body may have (core.inputs.json_body; orjson's own
# limit is 1024).
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 64, minimum=2, maximum=1000)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.auth.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "core.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "dicomsvc API",
    "DESCRIPTION": (
        "DICOM worklist-and-exams service. Authenticate with `Authorization: Bearer <API key>`; "
        "each endpoint family needs a scope (see each operation)."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"ApiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "API key"}}
    },
    "SECURITY": [{"ApiKey": []}],
    "AUTHENTICATION_WHITELIST": [],
    # Swagger UI assets served by us: clinics often run without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- DICOM ------------------------------------------------------------------------------------
DICOM_UID_ROOT = env_str("DICOM_UID_ROOT", "")
DICOM_UID_MAX_COUNT = env_int("DICOM_UID_MAX_COUNT", 1000, minimum=1, maximum=100000)
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "").rstrip("/")

# --- worklist (issue 2) -------------------------------------------------------------------------
WORKLIST_PAGE_MAX = env_int("WORKLIST_PAGE_MAX", 1000, minimum=1)
WORKLIST_PAGE_DEFAULT = env_int("WORKLIST_PAGE_DEFAULT", 100, minimum=1)
# (end worklist)

# --- exams (issue 3) ----------------------------------------------------------------------------
# Which PACS holds the exams: "embedded" (files in the "dicom" storage + an index in the database),
# "dicomweb" (any DICOMweb PACS at PACS_SERVICE_URL) or a dotted path to a PacsBackend subclass.
PACS_BACKEND = env_str("PACS_BACKEND", "embedded")
PACS_SERVICE_URL = env_str("PACS_SERVICE_URL", "").rstrip("/")
PACS_AUTHORIZATION_TOKEN = env_str("PACS_AUTHORIZATION_TOKEN", "")
PACS_USERNAME = env_str("PACS_USERNAME", "")
PACS_PASSWORD = env_str("PACS_PASSWORD", "")
PACS_NAME = env_str("PACS_NAME", "")
PACS_OPTIONS = {
    "url": PACS_SERVICE_URL,
    "token": PACS_AUTHORIZATION_TOKEN,
    "username": PACS_USERNAME,
    "password": PACS_PASSWORD,
    "name": PACS_NAME,
    "connect_timeout": env_float("PACS_CONNECT_TIMEOUT", 3.0, minimum=0.1),
    "read_timeout": env_float("PACS_READ_TIMEOUT", 30.0, minimum=0.1),
    "retries": env_int("PACS_RETRIES", 2, minimum=0, maximum=10),
    "pool_size": env_int("PACS_POOL_SIZE", 10, minimum=1, maximum=200),
}
PACS_SOURCE_ID = env_str("PACS_SOURCE_ID", "DICOMSVC")
# Instance files of the embedded backend and cached thumbnails: Django storage aliases. S3 (or any
# django-storages backend) is EXAMS_STORAGE_BACKEND=storages.backends.s3.S3Storage plus its
# options as JSON in EXAMS_STORAGE_OPTIONS, e.g. {"bucket_name": "pacs", "endpoint_url": "..."}.
EXAMS_STORAGE_BACKEND = env_str("EXAMS_STORAGE_BACKEND", "exams.storage.InstanceFileStorage")
EXAMS_STORAGE_OPTIONS = env_json("EXAMS_STORAGE_OPTIONS", {"location": str(VAR_DIR / "dicom")})
STORAGES["dicom"] = {"BACKEND": EXAMS_STORAGE_BACKEND, "OPTIONS": EXAMS_STORAGE_OPTIONS}
STORAGES["dicom-thumbnails"] = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": env_str("EXAMS_THUMBNAIL_DIR", str(VAR_DIR / "thumbnails"))},
}
EXAMS_UPLOAD_MAX_BYTES = env_int("EXAMS_UPLOAD_MAX_BYTES", 2 * 1024**3, minimum=1024)
# Most parts one multipart POST /exams may have (each costs a check and an audit row even when empty).
EXAMS_UPLOAD_MAX_PARTS = env_int("EXAMS_UPLOAD_MAX_PARTS", 1000, minimum=1)
EXAMS_UPLOAD_MEMORY_BYTES = env_int("EXAMS_UPLOAD_MEMORY_BYTES", 4 * 1024**2, minimum=0)
EXAMS_MAX_PIXELS = env_int("EXAMS_MAX_PIXELS", 1024**3, minimum=1)
EXAMS_ALLOW_OVERWRITE = env_bool("EXAMS_ALLOW_OVERWRITE", False)
EXAMS_METADATA_FILL = env_bool("EXAMS_METADATA_FILL", True)
EXAMS_PAGE_DEFAULT = env_int("EXAMS_PAGE_DEFAULT", 100, minimum=1)
EXAMS_PAGE_MAX = env_int("EXAMS_PAGE_MAX", 1000, minimum=1)
EXAMS_THUMBNAIL_MAX_SIZE = env_int("EXAMS_THUMBNAIL_MAX_SIZE", 1024, minimum=16)
# (end exams)

# --- render -----------------------------------------------------------------------------------
# Header-only caps checked before any pixel decode (dicomsvc.dicom.render).
RENDER_MAX_PIXELS = env_int("RENDER_MAX_PIXELS", 2**32, minimum=1)
RENDER_MAX_FRAME_PIXELS = env_int("RENDER_MAX_FRAME_PIXELS", 2**26, minimum=1)
# (end render)

# --- callbacks (issue 4) ------------------------------------------------------------------------
# Receivers of every new-exam event: "https://a.example/hook,https://b.example/hook|whsec_..." (an
# optional per-URL Standard Webhooks secret after "|"; CALLBACK_SIGNING_SECRET signs the others).
CALLBACK_URLS = env_list("CALLBACK_URLS", [])
CALLBACK_SIGNING_SECRET = env_str("CALLBACK_SIGNING_SECRET", "")
# When set, POST /new-exam-callback also needs X-Callback-Signature: sha256=<hex HMAC of the body>.
CALLBACK_INBOUND_SECRET = env_str("CALLBACK_INBOUND_SECRET", "")
CALLBACK_CONNECT_TIMEOUT = env_float("CALLBACK_CONNECT_TIMEOUT", 3.0, minimum=0.1)
CALLBACK_READ_TIMEOUT = env_float("CALLBACK_READ_TIMEOUT", 10.0, minimum=0.1)
CALLBACK_RETRY_BASE_DELAY = env_float("CALLBACK_RETRY_BASE_DELAY", 10.0, minimum=0.01)
CALLBACK_RETRY_MAX_DELAY = env_float("CALLBACK_RETRY_MAX_DELAY", 3600.0, minimum=0.01)
CALLBACK_RETRY_HORIZON = env_float("CALLBACK_RETRY_HORIZON", 26 * 3600.0, minimum=1.0)
# A claimed delivery whose worker vanished is taken over after this long; it must outlast one attempt.
CALLBACK_CLAIM_TIMEOUT = env_float(
    "CALLBACK_CLAIM_TIMEOUT", CALLBACK_CONNECT_TIMEOUT + CALLBACK_READ_TIMEOUT + 30.0, minimum=1.0
)
if CALLBACK_CLAIM_TIMEOUT <= CALLBACK_CONNECT_TIMEOUT + CALLBACK_READ_TIMEOUT:
    raise ImproperlyConfigured(
        "CALLBACK_CLAIM_TIMEOUT must be longer than CALLBACK_CONNECT_TIMEOUT + CALLBACK_READ_TIMEOUT"
    )
# The sweeper wakes due retries and rescues lost wake-ups: short, so a worker crash costs seconds.
CALLBACK_SWEEP_INTERVAL = env_float("CALLBACK_SWEEP_INTERVAL", 2.0, minimum=0.1)
# A due delivery whose wake-up message has not run after this long is enqueued again (lost message).
CALLBACK_REQUEUE_AFTER = env_float("CALLBACK_REQUEUE_AFTER", 10.0, minimum=0.1)
CALLBACK_TASK_QUEUE = env_str("CALLBACK_TASK_QUEUE", "")  # empty: CELERY_TASK_DEFAULT_QUEUE
CALLBACK_EVENTS_PAGE_DEFAULT = env_int("CALLBACK_EVENTS_PAGE_DEFAULT", 100, minimum=1)
CALLBACK_EVENTS_PAGE_MAX = env_int("CALLBACK_EVENTS_PAGE_MAX", 1000, minimum=1)
CALLBACKS_BEAT_SCHEDULE = {
    "callbacks-sweep": {
        "task": "callbacks.tasks.deliveries_sweep",
        "schedule": CALLBACK_SWEEP_INTERVAL,
        "options": {"expires": CALLBACK_SWEEP_INTERVAL}
        | ({"queue": CALLBACK_TASK_QUEUE} if CALLBACK_TASK_QUEUE else {}),
    }
}
# (end callbacks)

# --- viewer (issue 5) ---------------------------------------------------------------------------
# Our own tokens: HMAC-signed with a key derived from VIEWER_TOKEN_SECRET (else SECRET_KEY) and a salt.
VIEWER_TOKEN_SECRET = env_str("VIEWER_TOKEN_SECRET", "")
VIEWER_TOKEN_TTL = env_int("VIEWER_TOKEN_TTL", 900, minimum=10, maximum=7 * 24 * 3600)
VIEWER_TOKEN_SINGLE_USE = env_bool("VIEWER_TOKEN_SINGLE_USE", False)
# How long a viewer page may keep reading the study after it exchanged its token.
VIEWER_SESSION_TTL = env_int("VIEWER_SESSION_TTL", 3600, minimum=60, maximum=24 * 3600)
# Origins allowed to show the viewer page in a frame (a patient portal), e.g. https://portal.example.org
VIEWER_FRAME_ANCESTORS = env_list("VIEWER_FRAME_ANCESTORS", [], separator=" ")
# Compatibility mode: all three set -> /token asks that external viewer service for the token.
DICOM_VIEWER_URL = env_str("DICOM_VIEWER_URL", "")
VIEWER_GET_TOKEN_ENDPOINT = env_str("VIEWER_GET_TOKEN_ENDPOINT", "")
VIEWER_AUTHORIZATION_TOKEN = env_str("VIEWER_AUTHORIZATION_TOKEN", "")
VIEWER_EXTERNAL_TIMEOUT = env_float("VIEWER_EXTERNAL_TIMEOUT", 10.0, minimum=0.1)
# The viewer page's data endpoints take a viewer session bearer, not an API key: say so in the schema
# (their operations name this scheme; it must be declared in components.securitySchemes).
SPECTACULAR_SETTINGS["AUTHENTICATION_WHITELIST"] = [
    *SPECTACULAR_SETTINGS["AUTHENTICATION_WHITELIST"],
    "viewer.auth.ViewerSessionAuthentication",
]
SPECTACULAR_SETTINGS["APPEND_COMPONENTS"]["securitySchemes"]["ViewerSession"] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "viewer session token from POST /viewer/api/session",
}
# (end viewer)

# --- DIMSE (issue 7) ----------------------------------------------------------------------------
# The DICOM network services (manage.py run_dimse): C-ECHO, Modality Worklist C-FIND, C-STORE.
DIMSE_AE_TITLE = env_str("DIMSE_AE_TITLE", "DICOMSVC")
DIMSE_BIND_ADDRESS = env_str("DIMSE_BIND_ADDRESS", "0.0.0.0")  # noqa: S104 - a DICOM listener serves the LAN
DIMSE_PORT = env_int("DIMSE_PORT", 11112, minimum=1, maximum=65535)
# Calling AE titles allowed to associate, each optionally pinned to addresses: "CT1@10.0.0.5|10.0.0.6,MR1".
# Empty refuses everyone unless DIMSE_ALLOW_ANY_AE=true (an explicit, logged choice).
DIMSE_ALLOWED_AES = env_list("DIMSE_ALLOWED_AES", [])
DIMSE_ALLOW_ANY_AE = env_bool("DIMSE_ALLOW_ANY_AE", False)
DIMSE_REQUIRE_CALLED_AE = env_bool("DIMSE_REQUIRE_CALLED_AE", True)
DIMSE_MAX_ASSOCIATIONS = env_int("DIMSE_MAX_ASSOCIATIONS", 10, minimum=1, maximum=1000)
DIMSE_ACSE_TIMEOUT = env_float("DIMSE_ACSE_TIMEOUT", 30.0, minimum=0.1)
DIMSE_DIMSE_TIMEOUT = env_float("DIMSE_DIMSE_TIMEOUT", 30.0, minimum=0.1)
DIMSE_NETWORK_TIMEOUT = env_float("DIMSE_NETWORK_TIMEOUT", 60.0, minimum=0.1)
DIMSE_MAX_PDU = env_int("DIMSE_MAX_PDU", 262144, minimum=0)
DIMSE_MWL_MAX_RESULTS = env_int("DIMSE_MWL_MAX_RESULTS", 500, minimum=1, maximum=100000)
# Procedure step states answered when the query does not match on ScheduledProcedureStepStatus.
DIMSE_MWL_STATES = env_list("DIMSE_MWL_STATES", ["SCHEDULED"])
DIMSE_STORE_ENABLED = env_bool("DIMSE_STORE_ENABLED", True)
DIMSE_MPPS_ENABLED = env_bool("DIMSE_MPPS_ENABLED", True)  # Modality Performed Procedure Step SCP (issue 15)
# Query/Retrieve SCP over the exams index (dimse/qr.py): Patient Root and Study Root C-FIND, C-GET, C-MOVE.
DIMSE_QR_ENABLED = env_bool("DIMSE_QR_ENABLED", True)
DIMSE_QR_MAX_RESULTS = env_int("DIMSE_QR_MAX_RESULTS", 1000, minimum=1, maximum=100000)
# C-MOVE destinations, "AETITLE@host:port" each; a Move Destination not listed is refused (0xA801).
DIMSE_MOVE_DESTINATIONS = env_list("DIMSE_MOVE_DESTINATIONS", [])
# (end dimse)

# --- UPS-RS and its event channel (issue 15) -------------------------------------------------------
# The DICOMweb root (issue 14 defines it for QIDO/WADO/STOW; the same setting): UPS-RS is served
# at /<DICOMWEB_PATH>/workitems and its WebSocket event channel at /<DICOMWEB_PATH>/subscribers/<AE>.
DICOMWEB_PATH = env_str("DICOMWEB_PATH", "dicomweb").strip("/")
# The ASGI server (uvicorn) that serves the WebSocket event channel; gunicorn keeps serving HTTP.
WS_PORT = env_int("WS_PORT", 8001, minimum=1, maximum=65535)
# The event channel's public base URL, answered in a subscription's Content-Location, e.g.
# wss://pacs-gw.example.org/dicomweb behind a reverse proxy; empty: ws://<request host>:WS_PORT/...
UPS_EVENT_CHANNEL_URL = env_str("UPS_EVENT_CHANNEL_URL", "").rstrip("/")
# Event reports are kept this long in the outbox (seconds), then pruned by the relay.
UPS_EVENT_RETENTION = env_int("UPS_EVENT_RETENTION", 86400, minimum=60)
# Channel layer between the event relay and the WebSocket consumers: Redis when REDIS_URL is set
# (one relay for the deployment sends to every ASGI process), else in-process memory (each ASGI
# process runs its own relay, fed by Postgres LISTEN/NOTIFY: no Redis needed on one node).
CHANNEL_LAYERS = {
    "default": (
        {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [env_str("REDIS_URL", "")]}}
        if env_str("REDIS_URL", "")
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}
ASGI_APPLICATION = "ups.asgi.application"
# (end ups)

# --- Celery -----------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Broadcasts (worker control, inspect ping): kombu's default is "control" in the current
        # directory, which left a control/ folder in the checkout.
        "control_folder": str(_broker_dir / "control"),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0, minimum=0.1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# Celery 6 makes this the default; say it now (and silence the start-up warning).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection before and after each task unless this is
# set: a new Postgres connection per task (a backend forked, authenticated), which was most of a
# webhook delivery's cost. Connections are reused instead, for this many tasks per worker process,
# and dicomsvc.celery applies DATABASE_CONN_MAX_AGE and drops broken connections around every task,
# as Django does around every request. 0 restores a new connection per task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "dicomsvc")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE: dict = {**CALLBACKS_BEAT_SCHEDULE}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat writes its schedule file after every task it sends, so the file's age tells a health check
# (manage.py healthcheck beat) that beat is ticking. The file is a few hundred bytes.
CELERY_BEAT_SYNC_EVERY = 1

# --- scale-out (issue 12) -------------------------------------------------------------------------
# Behind PgBouncer in transaction pooling mode: Django's server-side cursors (QuerySet.iterator(),
# used by export_worklist) are declared WITH HOLD outside a transaction, which a transaction pooler
# cannot keep on one server connection; this makes iterator() fetch in chunks client-side instead.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DATABASE_DISABLE_SERVER_SIDE_CURSORS", False)
# (end scale-out)

# --- process -----------------------------------------------------------------------------------
# glibc keeps blocks below this size on its heap and reuses freed ones (0 = glibc's defaults);
# see dicomsvc/allocator.py. Every process that loads these settings applies it.
ALLOCATOR_MMAP_THRESHOLD = env_int("ALLOCATOR_MMAP_THRESHOLD", 32 * 1024**2, minimum=0)
allocator.tune(ALLOCATOR_MMAP_THRESHOLD)
# (end process)

# --- logging ----------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # django.request logs the full path (with query strings that can carry patient IDs) on
        # every 4xx/5xx; our own RequestLogMiddleware logs a scrubbed line instead.
        "django.request": {"handlers": [], "level": "CRITICAL", "propagate": False},
        "django.server": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}

# --- OHIF viewer (issue 14) ------------------------------------------------------------------------
# The OHIF app (scripts/ohif.sh installs the pinned @ohif/app build into OHIF_DIR/<version>), served at
# /<OHIF_PATH>/ with an app config pointing at /<DICOMWEB_PATH>/. On by default; /ohif/ answers 404
# when it is off and 503 (saying how to install it) when it is on but not installed. The built-in
# viewer (/viewer/) stays the default for patient-role tokens.
OHIF_ENABLED = env_bool("OHIF_ENABLED", True)
OHIF_PATH = env_str("OHIF_PATH", "ohif").strip("/") or "ohif"
# Not under DICOMSVC_VAR_DIR: one read-only install shared by every copy that runs from this tree.
OHIF_DIR = Path(env_str("OHIF_DIR", str(BASE_DIR / "var" / "ohif")))
