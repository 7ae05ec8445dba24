"""Replay webhook deliveries: the dead and failed ones by default, or those you choose."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from callbacks.models import DeliveryState
from callbacks.services import deliveries_replay
from core.audit import Actor

REPLAYABLE = [s for s in DeliveryState.values if s != DeliveryState.SENDING]


class Command(BaseCommand):
    help = (
        "Send webhook deliveries again from now, with a fresh retry horizon and the same webhook-id. "
        "Without options: every dead and failed delivery. Options combine."
    )

    def add_arguments(self, parser):
        parser.add_argument("--delivery", type=int, action="append", dest="deliveries", help="A delivery id")
        parser.add_argument("--event", type=int, help="Only deliveries of this event id")
        parser.add_argument(
            "--state",
            action="append",
            dest="states",
            choices=REPLAYABLE,
            help="Only deliveries in this state",
        )
        parser.add_argument("--since", help="Only deliveries created on or after this day (YYYY-MM-DD)")

    def handle(self, *args, deliveries=None, event=None, states=None, since=None, **options):
        since_at = None
        if since:
            try:
                day = dt.date.fromisoformat(since)
            except ValueError:
                raise CommandError("--since must be a day as YYYY-MM-DD") from None
            since_at = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
        ids = deliveries_replay(
            actor=Actor(name="manage.py replay_callbacks", kind="command"),
            delivery_ids=deliveries,
            event_id=event,
            states=states,
            since=since_at,
        )
        self.stdout.write(f"Replayed {len(ids)} deliveries.")
