"""gunicorn settings for the request benchmark, used instead of the demo's gunicorn.conf.py
(which gunicorn would read from the working directory): one sync worker that is never
recycled mid-run (its CPU time is measured by pid) and no access log."""

workers = 1
worker_class = "sync"
max_requests = 0
accesslog = None
