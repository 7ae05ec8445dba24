import copy
import time
import uuid
from urllib.parse import quote

import pytest
from django.db import connection

from callbacks.examples import DOCUMENTED_EXAMPLE_VALUE
from tests.callbacks.harness import FAST_DELIVERY_ENV, service_env, start_worker


@pytest.fixture
def pacs_event() -> dict:
    """The reference documentation's own example of a PACS callback."""
    return copy.deepcopy(DOCUMENTED_EXAMPLE_VALUE)


@pytest.fixture
def pacs(make_client):
    """An API client as the PACS: callbacks:write."""
    return make_client("callbacks:write", name="PACS")


@pytest.fixture
def reader(make_client):
    """An API client as the RIS: callbacks:read."""
    return make_client("callbacks:read", name="RIS")


SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def wait_until(predicate, timeout: float = 30.0, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; bounded, for outcomes of other processes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{message} not reached in {timeout}s")


def database_url_of_test_db() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "postgres")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def delivery_env(transactional_db, settings):
    """Settings for real delivery in this test and the environment for its worker processes.

    The worker reads the pytest test database and a queue of its own on the real Redis.
    """
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        pytest.skip("needs REDIS_URL (a real Redis) for the Celery worker")
    queue = f"dicomsvc-cbtest-{uuid.uuid4().hex[:12]}"
    settings.CALLBACK_TASK_QUEUE = queue
    settings.CALLBACK_SIGNING_SECRET = SIGNING_SECRET
    for name, value in FAST_DELIVERY_ENV.items():
        setattr(settings, name, float(value))
    env = service_env(
        database_url=database_url_of_test_db(),
        broker_url=broker,
        queue=queue,
        extra={**FAST_DELIVERY_ENV, "CALLBACK_SIGNING_SECRET": SIGNING_SECRET},
    )
    yield env
    import redis

    client = redis.Redis.from_url(broker)
    client.delete(queue)
    client.close()


@pytest.fixture
def worker(delivery_env):
    proc = start_worker(delivery_env)
    yield proc
    proc.stop()
