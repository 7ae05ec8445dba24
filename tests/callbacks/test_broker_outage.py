"""Redis stops while events arrive: they are stored and answered 204, and delivered once it returns.

Uses a throwaway redis-server of its own (never the shared one), gunicorn and a worker on it.
"""

import json

import pytest
import requests

from callbacks.models import CallbackDelivery, CallbackEvent
from core.services import api_key_create
from tests.callbacks.conftest import wait_until
from tests.callbacks.harness import Receiver, always, service_env, start_gunicorn, start_redis, start_worker

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def test_events_arriving_while_redis_is_down_are_stored_and_delivered_after_it_returns(
    delivery_env, pacs_event
):
    _, key = api_key_create(name="PACS", scopes=["callbacks:write"])
    redis, port = start_redis()
    procs = [redis]
    with Receiver(always(204)) as receiver:
        env = service_env(
            database_url=delivery_env["DATABASE_URL"],
            broker_url=f"redis://127.0.0.1:{port}/0",
            queue=delivery_env["CELERY_TASK_DEFAULT_QUEUE"],
            extra={
                **{k: v for k, v in delivery_env.items() if k.startswith("CALLBACK_")},
                "CALLBACK_URLS": receiver.url,
            },
        )
        try:
            web, base_url = start_gunicorn(env, workers=1)
            procs.append(web)
            procs.append(start_worker(env))
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"

            def post(number: int) -> int:
                event = {**pacs_event, "NumberOfStudyRelatedInstances": number}
                return session.post(
                    f"{base_url}/new-exam-callback", data=json.dumps(event), timeout=10
                ).status_code

            assert [post(n) for n in range(3)] == [204] * 3
            receiver.wait_for(3)

            redis.kill()
            assert [post(n) for n in range(3, 8)] == [204] * 5
            assert CallbackEvent.objects.count() == 8

            redis, _ = start_redis(port)
            procs.append(redis)
            received = receiver.wait_for(8, timeout=60)
            wait_until(lambda: CallbackDelivery.objects.filter(state="delivered").count() == 8, timeout=30)
        finally:
            for proc in reversed(procs):
                proc.stop()

    counts = sorted(json.loads(r.body)["NumberOfStudyRelatedInstances"] for r in received)
    assert sorted(set(counts)) == list(range(8))
