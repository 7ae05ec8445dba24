import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomsvc.settings")

app = Celery("dicomsvc")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(task=None, **kwargs) -> None:
    """Around every task what Django does around every request: close database connections past
    DATABASE_CONN_MAX_AGE or broken by an error, keep the others (CELERY_DB_REUSE_MAX stops
    Celery's fixup from closing them all). Not for eager tasks, which run inside the caller's
    transaction."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
