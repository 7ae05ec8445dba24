"""dicomsvc settings: every value comes from the environment (see README "Settings").

Defaults let a fresh clone run with nothing configured: SQLite and a filesystem Celery broker
under ``var/``. Set DATABASE_URL / REDIS_URL for Postgres and Redis in production.
"""

import logging
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dicomsvc.env import env_bool, env_float, env_int, env_list, env_str

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
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestLogMiddleware",
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

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'dicomsvc.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
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
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 10, minimum=0, maximum=300)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.auth.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
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
# (end exams)

# --- callbacks (issue 4) ------------------------------------------------------------------------
CALLBACK_URLS = env_list("CALLBACK_URLS", [])
# (end callbacks)

# --- viewer (issue 5) ---------------------------------------------------------------------------
# Our own tokens: HMAC-signed with a key derived from VIEWER_TOKEN_SECRET (else SECRET_KEY) and a salt.
VIEWER_TOKEN_SECRET = env_str("VIEWER_TOKEN_SECRET", "")
VIEWER_TOKEN_TTL = env_int("VIEWER_TOKEN_TTL", 900, minimum=10, maximum=7 * 24 * 3600)
VIEWER_TOKEN_SINGLE_USE = env_bool("VIEWER_TOKEN_SINGLE_USE", False)
# How long a viewer page may keep reading the study after it exchanged its token.
VIEWER_SESSION_TTL = env_int("VIEWER_SESSION_TTL", 3600, minimum=60, maximum=24 * 3600)
# Compatibility mode: all three set -> /token asks that external viewer service for the token.
DICOM_VIEWER_URL = env_str("DICOM_VIEWER_URL", "")
VIEWER_GET_TOKEN_ENDPOINT = env_str("VIEWER_GET_TOKEN_ENDPOINT", "")
VIEWER_AUTHORIZATION_TOKEN = env_str("VIEWER_AUTHORIZATION_TOKEN", "")
VIEWER_EXTERNAL_TIMEOUT = env_float("VIEWER_EXTERNAL_TIMEOUT", 10.0, minimum=0.1)
# (end viewer)

# --- DIMSE (issue 7) ----------------------------------------------------------------------------
# (end dimse)

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
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0, minimum=0.1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "dicomsvc")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE: dict = {}

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
