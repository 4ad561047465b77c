"""Celery: PRODUCER/CONSUMER spans from Celery's signals (``signals``); the worker-process
lifecycle that flushes them and ends the spans of tasks a killed or lost child could not
end (``lifecycle``); a failed publish ending its span (``sender``); beat's scheduled sends
as traces of their own (``beat``); the transport a message goes through (``transport``);
our own task headers (``headers``), chords (``chords``) and wait times (``timing``)."""
