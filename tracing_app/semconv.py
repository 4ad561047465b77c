"""Attribute names, one module for all: the OpenTelemetry semantic conventions
(https://opentelemetry.io/docs/specs/semconv/: HTTP, database, messaging, RPC, error)
and our own, namespaced ``celery.*`` and ``tracing_app.*`` where no convention exists.

Each constant is named after its attribute (``http.request.method`` ->
``HTTP_REQUEST_METHOD``), so a name here cannot drift from its value.
"""


CELERY_BEAT_ENTRY_NAME = "celery.beat.entry.name"
CELERY_TASK_ARGS = "celery.task.args"
CELERY_TASK_ATTEMPT = "celery.task.attempt"
CELERY_TASK_ETA = "celery.task.eta"
CELERY_TASK_KWARGS = "celery.task.kwargs"
CELERY_TASK_NAME = "celery.task.name"
CELERY_TASK_QUEUE_WAIT_MS = "celery.task.queue_wait_ms"
CELERY_TASK_RETRIES = "celery.task.retries"
CELERY_TASK_SCHEDULED_WAIT_MS = "celery.task.scheduled_wait_ms"
CELERY_TASK_STATE = "celery.task.state"

CLIENT_ADDRESS = "client.address"
CLIENT_PORT = "client.port"

DEPLOYMENT_ENVIRONMENT_NAME = "deployment.environment.name"

# A manage.py command run (integrations/django/commands.py); no convention exists.
DJANGO_COMMAND_NAME = "django.command.name"
DJANGO_COMMAND_OPTIONS = "django.command.options"

DB_COLLECTION_NAME = "db.collection.name"
DB_NAMESPACE = "db.namespace"
DB_OPERATION_BATCH_SIZE = "db.operation.batch.size"
DB_OPERATION_NAME = "db.operation.name"
DB_QUERY_TEXT = "db.query.text"
DB_RESPONSE_STATUS_CODE = "db.response.status_code"
DB_SYSTEM_NAME = "db.system.name"
# Django database vendor -> db.system.name (the database integration and the database cache).
DJANGO_DB_SYSTEMS = {"postgresql": "postgresql", "sqlite": "sqlite", "mysql": "mysql", "oracle": "oracle.db"}

ERROR_TYPE = "error.type"

# The "exception" span event (semantic conventions: exceptions).
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"
EXCEPTION_TYPE = "exception.type"

HTTP_REQUEST_METHOD = "http.request.method"
HTTP_REQUEST_METHOD_ORIGINAL = "http.request.method_original"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_ROUTE = "http.route"

MESSAGING_DESTINATION_NAME = "messaging.destination.name"
# On a span link: why the linked span is linked (ours: "previous_attempt", "chord_header", "outbox.write").
MESSAGING_LINK_SOURCE = "messaging.link.source"
MESSAGING_MESSAGE_BODY_SIZE = "messaging.message.body.size"
MESSAGING_MESSAGE_ID = "messaging.message.id"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"
MESSAGING_SYSTEM = "messaging.system"

NETWORK_PROTOCOL_VERSION = "network.protocol.version"

PROCESS_EXECUTABLE_NAME = "process.executable.name"
PROCESS_EXIT_CODE = "process.exit.code"
PROCESS_PID = "process.pid"

RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code"
RPC_METHOD = "rpc.method"
RPC_SERVICE = "rpc.service"
RPC_SYSTEM = "rpc.system"

SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"

TRACING_APP_CACHE_HIT = "tracing_app.cache.hit"
TRACING_APP_CACHE_HITS = "tracing_app.cache.hits"
TRACING_APP_CACHE_KEY = "tracing_app.cache.key"
# Event name (context/work.py): one per statement shape a request or task repeated.
TRACING_APP_DB_REPEATED_QUERY = "tracing_app.db.repeated_query"
TRACING_APP_DB_REPEATED_QUERY_COUNT = "tracing_app.db.repeated_query.count"
TRACING_APP_DB_QUERY_IN_LIST_SIZE = "tracing_app.db.query.in_list.size"
TRACING_APP_OUTBOX_EVENT_ID = "tracing_app.outbox.event_id"
TRACING_APP_OUTBOX_WAIT_MS = "tracing_app.outbox.wait_ms"
# Resource attribute: web, worker, beat or command (pipeline/resource.py).
TRACING_APP_PROCESS_ROLE = "tracing_app.process.role"

URL_PATH = "url.path"
URL_QUERY = "url.query"
URL_SCHEME = "url.scheme"

USER_AGENT_ORIGINAL = "user_agent.original"
