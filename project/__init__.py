# Load the Celery app with Django so that @shared_task and send_task use it.
from .celery import app as celery_app

__all__ = ["celery_app"]
