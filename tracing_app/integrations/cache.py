"""Django's cache framework: a CLIENT span per cache operation (``cache.get``, ``aset``, ...).

Django's cache has no public hook (no signal, no wrapper list like
``connection.execute_wrappers``), and routing ``CACHES`` through a tracing backend
would mean editing the user's settings. So the integration wraps the operations
of each backend class Django makes a cache object of: ``caches.create_connection``
(the handler's factory, called once per alias and thread, and once per request under
ASGI, where ``caches`` is context-local) is replaced on the ``caches`` instance; the
first object of a class gets that class's operations replaced by traced ones, in the
class's own ``__dict__`` (its own methods kept in ``ORIGINALS_ATTRIBUTE`` there), and
every object it returns gets its alias and span attributes as one instance
attribute, ``TARGET_ATTRIBUTE``. Per class, not per object: a new object costs one
attribute, not 26 wrappers (about 60 µs each time under ASGI, measured). Every
backend (Django's and the user's own subclasses, whatever methods they override) is
traced the same way, ``type(cache)`` stays the backend's class, and objects the
``caches`` handler did not make have no target and are not traced. ``uninstall()``
restores the factory and the classes; with the integration off nothing is wrapped.

Each span (named ``{operation} {alias}``, e.g. ``get default``) has

* ``db.system.name`` per backend (semantic conventions: ``redis``, ``memcached``;
  the database cache reports the database it lives in, ``postgresql`` or
  ``sqlite``, with its table as ``db.collection.name``; the in-process backends,
  which the conventions do not name, ``django.locmem``, ``django.filebased`` and
  ``django.dummy``; any other backend ``django.cache``),
* ``db.operation.name`` (the method called: ``get``, ``aget_or_set``),
  ``server.address``/``server.port`` and ``db.namespace`` (Redis database number)
  where the backend has them,
* ``tracing_app.cache.hit`` (bool) for ``get``, ``get_or_set`` and ``has_key`` (and
  their async forms); ``tracing_app.cache.hits`` and ``db.operation.batch.size`` (keys
  asked) for ``get_many``; ``db.operation.batch.size`` for ``set_many``/``delete_many``,
* ``tracing_app.cache.key``, only for keys matching ``TRACING["RECORD_CACHE_KEYS"]``
  (shell patterns) and only for single-key operations: keys often hold user ids or
  e-mails.

An operation implemented with others (``get_or_set`` calls ``get`` and ``add``;
``aget`` runs ``get`` in a thread) is one span: the inner calls are not traced
again, but an inner ``get`` tells the outer span whether it was a hit.
"""

from __future__ import annotations

import contextvars
import fnmatch
import functools
import inspect
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tracing_app.conf import TracingConfig
from tracing_app.context import privacy
from tracing_app.context.propagators import attach, current_context, detach, with_span
from tracing_app.context.suppression import suppressed
from tracing_app.integrations.base import Integration
from tracing_app.pipeline.fast_spans import drops_child_of_current
from tracing_app.pipeline.provider import get_tracer
from tracing_app.safety import guarded, swallow
from tracing_app.semconv import (
    DB_COLLECTION_NAME,
    DB_NAMESPACE,
    DB_OPERATION_BATCH_SIZE,
    DB_OPERATION_NAME,
    DB_SYSTEM_NAME,
    DJANGO_DB_SYSTEMS,
    SERVER_ADDRESS,
    SERVER_PORT,
    TRACING_APP_CACHE_HIT,
    TRACING_APP_CACHE_HITS,
    TRACING_APP_CACHE_KEY,
)

logger = logging.getLogger(__name__)

SINGLE_KEY = ("get", "set", "add", "delete", "incr", "decr", "touch", "has_key", "get_or_set")
MANY_KEYS = ("get_many", "set_many", "delete_many")
OPERATIONS = (*SINGLE_KEY, *MANY_KEYS, "clear")
TRACED = (*OPERATIONS, *(f"a{name}" for name in OPERATIONS))
ORIGINALS_ATTRIBUTE = "_tracing_app_cache_originals"  # on a traced class
TARGET_ATTRIBUTE = "_tracing_app_cache_target"  # on a cache object the caches handler made

# Backend class (module.Class) -> db.system.name, for the backends that are not a database.
SYSTEMS = {
    "django.core.cache.backends.redis.RedisCache": "redis",
    "django.core.cache.backends.memcached.PyMemcacheCache": "memcached",
    "django.core.cache.backends.memcached.PyLibMCCache": "memcached",
    "django.core.cache.backends.locmem.LocMemCache": "django.locmem",
    "django.core.cache.backends.filebased.FileBasedCache": "django.filebased",
    "django.core.cache.backends.dummy.DummyCache": "django.dummy",
}
OTHER_SYSTEM = "django.cache"
_MISS = object()


class _Operation:
    __slots__ = ("hit",)

    def __init__(self) -> None:
        self.hit: bool | None = None


# The traced operation running in this context: calls it makes on the same cache are not traced again.
_running: contextvars.ContextVar[_Operation | None] = contextvars.ContextVar("tracing_app_cache_op", default=None)


def backend_attributes(backend: Any, alias: str) -> dict[str, Any]:
    """The attributes every span of ``backend`` carries (see the module docstring)."""
    cls = type(backend)
    system = SYSTEMS.get(f"{cls.__module__}.{cls.__qualname__}")
    attributes: dict[str, Any] = {}
    table = getattr(backend, "_table", None)
    if system is None and isinstance(table, str) and hasattr(backend, "cache_model_class"):
        from django.db import connections, router

        database = connections[router.db_for_read(backend.cache_model_class) or "default"]
        system = DJANGO_DB_SYSTEMS.get(database.vendor, database.vendor)
        attributes[DB_COLLECTION_NAME] = table
        if database.settings_dict.get("NAME"):
            attributes[DB_NAMESPACE] = str(database.settings_dict["NAME"])
    attributes[DB_SYSTEM_NAME] = system or OTHER_SYSTEM
    servers = getattr(backend, "_servers", None)
    if isinstance(servers, (list, tuple)) and servers and isinstance(servers[0], str):
        attributes.update(_server(servers[0], system))
    return attributes


def _server(location: str, system: str | None) -> dict[str, Any]:
    """server.address/port (and the Redis database number) of ``redis://host:6379/3`` or ``host:11211``."""
    parts = urlsplit(location if "://" in location else f"//{location}")
    attributes: dict[str, Any] = {}
    try:
        if parts.hostname:
            attributes[SERVER_ADDRESS] = parts.hostname
        if parts.port:
            attributes[SERVER_PORT] = parts.port
    except ValueError:  # a port that is not a number: leave the address out
        return {}
    if system == "redis" and parts.scheme.startswith("redis"):
        database = parts.path.strip("/")
        attributes[DB_NAMESPACE] = database if database.isdigit() else "0"
    return attributes


class _Target:
    """What the spans of one cache object carry: its span names and attributes."""

    __slots__ = ("attributes", "names")

    def __init__(self, alias: str, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.names = {name: f"{name} {alias}" for name in TRACED}


class CacheIntegration(Integration):
    name = "cache"

    def __init__(self) -> None:
        super().__init__()
        self._handler: Any = None
        self._classes: list[type] = []
        self._targets: dict[tuple, _Target] = {}
        self._record_keys: re.Pattern[str] | None = None
        self._class_lock = threading.Lock()

    def _install(self, config: TracingConfig) -> None:
        from django.core.cache import caches

        # RECORD_CACHE_KEYS' shell patterns as one regular expression: one match per operation
        # (fnmatchcase's rules).
        patterns = config.record_cache_keys
        self._record_keys = re.compile("|".join(fnmatch.translate(p) for p in patterns)) if patterns else None
        original = caches.create_connection

        def create_connection(alias: str) -> Any:
            backend = original(alias)
            if self._handler is caches:
                with guarded("tracing a cache"):
                    self.wrap(backend, alias)
            return backend

        caches.create_connection = create_connection
        self._handler = caches
        # Caches this thread made before the install (BaseConnectionHandler keeps them
        # by alias in _connections, as its own all(initialized_only=True) reads them).
        for alias in caches:
            backend = getattr(caches._connections, alias, None)
            if backend is not None:
                with guarded("tracing a cache"):
                    self.wrap(backend, alias)

    def _uninstall(self) -> None:
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.__dict__.pop("create_connection", None)
        classes, self._classes = self._classes, []
        for cls in classes:
            for name, own in cls.__dict__[ORIGINALS_ATTRIBUTE].items():
                if own is None:
                    delattr(cls, name)
                else:
                    setattr(cls, name, own)
            delattr(cls, ORIGINALS_ATTRIBUTE)
        self._targets = {}

    def wrap(self, backend: Any, alias: str) -> None:
        """Trace ``backend`` (a cache object) as cache ``alias``: its class's operations
        become traced ones (once per class) and the object gets its ``_Target``."""
        cls = type(backend)
        if ORIGINALS_ATTRIBUTE not in cls.__dict__:
            with self._class_lock:  # two threads making their first object of a class
                if ORIGINALS_ATTRIBUTE not in cls.__dict__:
                    self._wrap_class(cls)
        servers, table = getattr(backend, "_servers", None), getattr(backend, "_table", None)
        key = (cls, alias, repr(servers), repr(table))  # what backend_attributes reads, hashable
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = _Target(alias, backend_attributes(backend, alias))
        backend.__dict__[TARGET_ATTRIBUTE] = target

    def _wrap_class(self, cls: type) -> None:
        """Replace ``cls``'s operations by traced ones. Only plain functions (sync or async)
        are wrapped: anything else an operation may be (a classmethod, a callable object)
        stays as it is, untraced. Recorded as it goes, so an uninstall undoes a partial wrap."""
        originals: dict[str, Any] = {}
        setattr(cls, ORIGINALS_ATTRIBUTE, originals)
        self._classes.append(cls)
        for name in TRACED:
            function = inspect.getattr_static(cls, name, None)
            if not inspect.isfunction(function):
                continue
            function = getattr(function, "__tracing_app_operation__", function)  # a traced base class's
            traced = _traced_async if inspect.iscoroutinefunction(function) else _traced
            originals[name] = cls.__dict__.get(name)
            setattr(cls, name, traced(function, name))

    def key_attribute(self, key: Any) -> str | None:
        keys = self._record_keys
        if keys is not None and isinstance(key, str) and keys.match(key):
            return key
        return None


integration = CacheIntegration()


# Each traced operation -> its synchronous form: ``aget`` -> ``get`` (``add`` stays ``add``).
BASE = {**{name: name for name in OPERATIONS}, **{f"a{name}": name for name in OPERATIONS}}


def _start(operation: str, span_name: str, backend_attrs: dict[str, Any], args: tuple, kwargs: dict,
           current: otel_context.Context) -> trace.Span:
    attributes = {**backend_attrs, DB_OPERATION_NAME: operation}
    base = BASE[operation]
    first = args[0] if args else kwargs.get("key", kwargs.get("keys", kwargs.get("data")))
    if base in SINGLE_KEY:
        key = integration.key_attribute(first)
        if key is not None:
            attributes[TRACING_APP_CACHE_KEY] = key
    elif base in MANY_KEYS and first is not None:
        try:
            count = len(first)
        except TypeError:  # an iterator of keys: no count without consuming it
            count = 0
        if count > 1:
            attributes[DB_OPERATION_BATCH_SIZE] = count
    return get_tracer().start_span(span_name, context=current, kind=SpanKind.CLIENT, attributes=attributes)


def _traceable(target: _Target | None) -> otel_context.Context | None:
    """The current context when an operation of the cache object with ``target`` gets a
    span now; None when it runs untraced (not ours, uninstalled, inside another traced
    operation, suppressed, or under an unsampled parent)."""
    if target is None or not integration.installed or _running.get() is not None:
        return None
    current = current_context()
    if suppressed(current) or drops_child_of_current(get_tracer(), current):
        return None
    return current


def _with_miss_marker(operation: str, args: tuple, kwargs: dict) -> tuple[tuple, dict, Any]:
    """For ``get``/``aget``: the call with our marker as the default, and the caller's default.
    The marker tells a miss from a stored value equal to the default (a cached ``None``)."""
    if operation not in ("get", "aget"):
        return args, kwargs, _MISS
    if len(args) >= 2:
        return (args[0], _MISS, *args[2:]), kwargs, args[1]
    default = kwargs.get("default")
    return args, {**kwargs, "default": _MISS}, default


class _Call:
    """One traced operation: its span, the call to make, and the context it runs in."""

    __slots__ = ("args", "default", "kwargs", "operation", "running", "span", "tokens")

    def __init__(self, span: trace.Span, operation: str, args: tuple, kwargs: dict,
                 current: otel_context.Context) -> None:
        self.span, self.operation = span, operation
        self.args, self.kwargs, self.default = _with_miss_marker(operation, args, kwargs)
        self.running = _Operation()
        self.tokens = (_running.set(self.running), attach(with_span(span, current)))

    @classmethod
    def begin(cls, operation: str, target: _Target, args: tuple, kwargs: dict,
              current: otel_context.Context) -> _Call | None:
        try:
            span = _start(operation, target.names[operation], target.attributes, args, kwargs, current)
            return cls(span, operation, args, kwargs, current)
        except Exception as exc:  # the operation runs untraced
            swallow("starting a cache span", exc)
            return None

    def failed(self, exc: BaseException) -> None:
        with guarded("recording a failed cache operation"):
            privacy.record_error(self.span, exc)

    def succeeded(self, result: Any) -> Any:
        """Record what ``result`` says (hit or miss) and return what the caller gets."""
        value = result if result is not _MISS else self.default
        try:
            base, running, span = BASE[self.operation], self.running, self.span
            if base == "get":
                running.hit = result is not _MISS
            elif base == "has_key":
                running.hit = bool(result)
            if base == "get_many" and isinstance(result, dict):
                span.set_attribute(TRACING_APP_CACHE_HITS, len(result))
            elif running.hit is not None and base in ("get", "get_or_set", "has_key"):
                span.set_attribute(TRACING_APP_CACHE_HIT, running.hit)
        except Exception as exc:  # a bare try costs nothing here, unlike ``with guarded()``
            swallow("recording a cache hit", exc)
        return value

    def end(self) -> None:
        detach(self.tokens[1])
        _running.reset(self.tokens[0])
        try:
            self.span.end()
        except Exception as exc:
            swallow("ending a cache span", exc)


def _nested(running: _Operation, operation: str, args: tuple, kwargs: dict, result: Any) -> None:
    """After an untraced operation of one of our cache objects inside the traced operation
    ``running`` (``_running``): an inner ``get`` of ``get_or_set`` tells the outer span hit or miss."""
    try:  # a bare try costs nothing here, unlike ``with guarded()``
        if running.hit is None and operation in ("get", "aget"):
            default = args[1] if len(args) >= 2 else kwargs.get("default")
            running.hit = result is not default
    except Exception as exc:
        swallow("recording a cache hit", exc)


def _traced(function: Callable[..., Any], operation: str) -> Callable[..., Any]:
    """``function`` (a backend class's ``operation``) traced, as a method of that class."""
    def traced(backend: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(backend, TARGET_ATTRIBUTE, None)
        current = _traceable(target)
        if current is None:
            result = function(backend, *args, **kwargs)
            running = _running.get() if target is not None else None
            if running is not None:  # inside a traced operation
                _nested(running, operation, args, kwargs, result)
            return result
        call = _Call.begin(operation, target, args, kwargs, current)
        if call is None:
            return function(backend, *args, **kwargs)
        try:
            result = function(backend, *call.args, **call.kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        else:
            return call.succeeded(result)
        finally:
            call.end()

    return _named_after(traced, function)


def _traced_async(function: Callable[..., Any], operation: str) -> Callable[..., Any]:
    async def traced(backend: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(backend, TARGET_ATTRIBUTE, None)
        current = _traceable(target)
        if current is None:
            result = await function(backend, *args, **kwargs)
            running = _running.get() if target is not None else None
            if running is not None:  # inside a traced operation
                _nested(running, operation, args, kwargs, result)
            return result
        call = _Call.begin(operation, target, args, kwargs, current)
        if call is None:
            return await function(backend, *args, **kwargs)
        try:
            result = await function(backend, *call.args, **call.kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        else:
            return call.succeeded(result)
        finally:
            call.end()

    return _named_after(traced, function)


def _named_after(traced: Callable[..., Any], function: Callable[..., Any]) -> Callable[..., Any]:
    """``traced`` with ``function``'s name and docstring (``functools.wraps``), and
    ``__tracing_app_operation__``: the function a subclass's wrapper calls."""
    traced = functools.wraps(function)(traced)
    traced.__tracing_app_operation__ = function  # type: ignore[attr-defined]
    return traced
