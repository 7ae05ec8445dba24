"""Celery entry points: thin, take ids, call ``callbacks.delivery``.

Messages only wake workers; the delivery rows hold the state. Enqueueing never fails the caller:
if the broker is down the rows are still there and the sweeper wakes them once it is back.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.utils import timezone

from callbacks import delivery

logger = logging.getLogger("dicomsvc.callbacks")


class WakeupTask(DjangoTask):
    """A task whose enqueueing (``wake``) is best effort: a broker outage is logged, never raised.

    Enqueueing runs after the request's commit, where an error would be a 500 for an event that
    is already stored; publishing does not retry either, so a request never waits on a dead broker.
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


def wake_many(delivery_ids: list[int]) -> None:
    """Wake these deliveries now, ``delivery.SEND_THREADS`` to a message: each message keeps one
    worker process busy, so a large sweep is spread over every worker."""
    step = delivery.SEND_THREADS
    for start in range(0, len(delivery_ids), step):
        deliveries_send.wake(delivery_ids[start : start + step])


def _attempt(delivery_ids: list[int]) -> None:
    """Send through the engine, then schedule the short retries it asks for (one message each;
    the sweeper wakes the others, and these too should a message be lost)."""
    attempted = delivery.deliveries_attempt(delivery_ids)
    now = timezone.now()
    for delivery_id, at in attempted.wake.items():
        deliveries_send.wake([delivery_id], countdown=max(0.0, (at - now).total_seconds()))


# acks_late is off on purpose: the row, not the message, is what must survive, and a message held
# unacknowledged only adds Redis's hour-long redelivery (the sweeper is faster) and, in kombu 5.7,
# a worker crash when the broker connection drops while messages are unacknowledged.
@shared_task(base=WakeupTask, name="callbacks.tasks.deliveries_send", ignore_result=True, acks_late=False)
def deliveries_send(delivery_ids: list[int]) -> None:
    """Deliveries woken by one message (an event's, or a sweep's share): claimed, sent
    concurrently (a slow receiver holds up no other) and recorded together."""
    _attempt(delivery_ids)


@shared_task(base=WakeupTask, name="callbacks.tasks.delivery_send", ignore_result=True, acks_late=False)
def delivery_send(delivery_id: int) -> None:
    """One delivery: only for messages queued by versions before 2026-12 (a batch of one now)."""
    _attempt([delivery_id])


@shared_task(base=WakeupTask, name="callbacks.tasks.deliveries_sweep", ignore_result=True, acks_late=False)
def deliveries_sweep() -> int:
    ids = delivery.deliveries_sweep()
    wake_many(ids)
    if ids:
        logger.info("sweeper woke %d deliveries", len(ids))
    return len(ids)
