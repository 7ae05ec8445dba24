"""Celery entry points: thin, take ids, call ``callbacks.delivery``.

Messages only wake workers; the delivery rows hold the state. Enqueueing never fails the caller:
if the broker is down the rows are still there and the sweeper wakes them once it is back.
"""

from __future__ import annotations

import functools
import logging
import time

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.db import connection, transaction

from callbacks import delivery

logger = logging.getLogger("dicomsvc.callbacks")
HANDOFF_AFTER = 1.0  # seconds


class WakeupTask(DjangoTask):
    """A task whose enqueueing is best effort: a broker outage is logged, never raised.

    ``delay_on_commit`` would otherwise raise from inside the committing request (a 500 for an
    event that is already stored); publishing does not retry either, so a request never waits
    on a dead broker.
    """

    def wake(self, *args, countdown: float | None = None) -> bool:
        options: dict = {"retry": False}
        if settings.CALLBACK_TASK_QUEUE:
            options["queue"] = settings.CALLBACK_TASK_QUEUE
        if countdown:
            options["countdown"] = countdown
        try:
            self.apply_async(args, **options)
        except Exception as exc:  # kombu/redis raise many types for an unreachable broker
            logger.warning("%s not enqueued (%s); the sweeper will pick it up", self.name, type(exc).__name__)
            return False
        return True

    def delay_on_commit(self, *args, **kwargs) -> None:
        transaction.on_commit(functools.partial(self.wake, *args, **kwargs))

    def apply_async_on_commit(self, args=(), kwargs=None, countdown: float | None = None, **options) -> None:
        transaction.on_commit(functools.partial(self.wake, *args, countdown=countdown))


# acks_late is off on purpose: the row, not the message, is what must survive, and a message held
# unacknowledged only adds Redis's hour-long redelivery (the sweeper is faster) and, in kombu 5.7,
# a worker crash when the broker connection drops while messages are unacknowledged.
@shared_task(base=WakeupTask, name="callbacks.tasks.delivery_send", ignore_result=True, acks_late=False)
def delivery_send(delivery_id: int) -> None:
    delivery.delivery_attempt(delivery_id)


@shared_task(base=WakeupTask, name="callbacks.tasks.deliveries_send", ignore_result=True, acks_late=False)
def deliveries_send(delivery_ids: list[int]) -> None:
    """An event's deliveries, woken by one message: each message costs more than a delivery.

    On Postgres they are claimed, sent (concurrently, so a slow receiver holds up no other) and
    recorded together (``delivery.deliveries_attempt``). Elsewhere they are sent one after the
    other; once that has taken ``HANDOFF_AFTER`` seconds (a slow or hanging receiver), the rest
    get messages of their own so other workers can take them.
    """
    if connection.vendor == "postgresql":
        delivery.deliveries_attempt(delivery_ids)
        return
    started = time.monotonic()
    for index, delivery_id in enumerate(delivery_ids):
        if index and time.monotonic() - started > HANDOFF_AFTER:
            for later in delivery_ids[index:]:
                delivery_send.wake(later)
            return
        delivery.delivery_attempt(delivery_id)


@shared_task(base=WakeupTask, name="callbacks.tasks.deliveries_sweep", ignore_result=True, acks_late=False)
def deliveries_sweep() -> int:
    ids = delivery.deliveries_sweep()
    for delivery_id in ids:
        delivery_send.wake(delivery_id)
    if ids:
        logger.info("sweeper woke %d deliveries", len(ids))
    return len(ids)
