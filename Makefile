# `make test` creates the virtualenv, installs requirements/dev.txt and runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint install run worker clean demo tail

$(STAMP): requirements/base.txt requirements/dev.txt requirements/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

run: $(STAMP)
	$(PY) manage.py migrate && $(VENV)/bin/gunicorn -c gunicorn.conf.py project.wsgi

worker: $(STAMP)
	OTEL_SERVICE_NAME=shop-worker $(VENV)/bin/celery -A project worker -l info

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .demo

# The embedded demo: SQLite, a serverless broker, web + worker + tracing_tail, no Docker.
demo: $(STAMP)
	$(PY) -m project.demo

# A terminal trace viewer for `make run` / `make worker` (they export to localhost:4318 by default).
tail: $(STAMP)
	$(PY) manage.py tracing_tail
