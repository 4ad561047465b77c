# `make test` creates the virtualenv, installs requirements/dev.txt and runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-versions lint lint-imports install run worker beat pricing protos clean demo tail

$(STAMP): requirements/base.txt requirements/dev.txt requirements/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The ends of the version ranges pyproject.toml claims (requirements/versions/), a subset of
# the tests each, in .venv-versions/: `make test-versions` or `make test-versions SETS=oldest`.
test-versions:
	bash .ci/versions.sh $(SETS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The layer contracts in .importlinter: integrations never imported by the pipeline or
# context, integrations independent, no cycles, the demo only through the public API.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

run: $(STAMP)
	$(PY) manage.py migrate && $(VENV)/bin/gunicorn -c gunicorn.conf.py

worker: $(STAMP)
	$(VENV)/bin/celery -A project worker -l info

# celery beat: the periodic inventory.reject_stale_orders (project/settings.py CELERY_BEAT_SCHEDULE).
beat: $(STAMP)
	$(VENV)/bin/celery -A project beat -l info -s .celerybeat-schedule

pricing: $(STAMP)
	OTEL_SERVICE_NAME=shop-pricing $(PY) manage.py serve_pricing

# Regenerate the checked-in gRPC code after editing a .proto (tests/test_pricing_service.py
# fails when they differ). Paths are relative to the repository root so that the
# generated imports read `from apps.pricing.api import pricing_pb2`.
PROTOS := apps/pricing/api/pricing.proto
protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)

clean:
	rm -rf $(VENV) .venv-versions .pytest_cache .ruff_cache .demo

# The embedded demo: SQLite, a serverless broker, web + worker + beat + tracing_tail, no Docker.
# `make demo ASGI=1` serves the web under ASGI (gunicorn with the uvicorn worker).
demo: $(STAMP)
	$(PY) -m project.demo $(if $(ASGI),--asgi)

# A terminal trace viewer for `make run` / `make worker` / `make beat` (they export to localhost:4318 by default).
tail: $(STAMP)
	$(PY) manage.py tracing_tail
