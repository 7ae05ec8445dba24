"""The service's own settings plus one bare Django view, the ceiling the API is compared with."""

from dicomsvc.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bare_urls"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
