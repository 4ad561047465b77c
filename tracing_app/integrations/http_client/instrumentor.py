"""What every HTTP client integration shares: an OpenTelemetry instrumentor installed on
tracing_app's provider, with the stable HTTP attribute names and ``PROPAGATE_TO`` applied.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import wrapt
from opentelemetry import propagate
from opentelemetry.trace import Span, get_current_span

from tracing_app.conf import TracingConfig
from tracing_app.context.egress import should_propagate
from tracing_app.context.propagators import withhold
from tracing_app.integrations.base import Integration
from tracing_app.pipeline.provider_proxy import DelegatingTracerProvider
from tracing_app.safety import guarded
from tracing_app.semconv import ERROR_TYPE, NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT

logger = logging.getLogger(__name__)


def telemetry_hook(function: Callable[..., None]) -> Callable[..., None]:
    """A request or response hook that never fails the request: the instrumentations
    call hooks without catching, so an exception in ours would reach the caller."""

    @functools.wraps(function)
    def hook(*args: Any) -> None:
        with guarded(f"HTTP client hook {function.__module__}.{function.__name__}"):
            function(*args)

    return hook


def _allowed(url: object) -> bool:
    try:
        return should_propagate(str(url))
    except Exception:  # str() of a foreign URL object: never send context on a guess
        return False


def withhold_unless_allowed(span: Span, url: object, headers: Any = None) -> None:
    """For a request hook: when ``url``'s host is outside ``PROPAGATE_TO``, the request
    leaves without ``traceparent``, ``tracestate`` or ``baggage`` (``withhold``), and
    those fields already in ``headers`` (the request's own, when given) are removed.
    Fails closed: a URL that cannot be read counts as not allowed."""
    if not _allowed(url):
        with guarded("withholding trace context from an outgoing request"):
            withhold(span)
            if headers is not None:
                _drop_propagation_fields(headers)


def drop_context_unless_allowed(url: object, headers: Any) -> None:
    """For a redirect's next request: when ``url``'s host is outside ``PROPAGATE_TO``,
    remove ``traceparent``, ``tracestate``, ``baggage`` (and the configured propagators'
    other fields) from ``headers`` (a mapping with ``pop``, a multidict, or a
    ``urllib.request.Request``). Clients build that request from a copy of the previous
    hop's headers, context included, and requests and urllib send it under the first
    hop's span without calling the instrumentation's hook again (aiohttp calls it once
    per call), so without this a redirect from an allowed host would carry the context
    to any host."""
    if not _allowed(url):
        with guarded("removing trace context from a redirected request"):
            _drop_propagation_fields(headers)


def _drop_propagation_fields(headers: Any) -> None:
    fields = {"traceparent", "tracestate", "baggage", *propagate.get_global_textmap().fields}
    if hasattr(headers, "remove_header"):  # urllib.request.Request: keys stored capitalize()d
        for name in fields:
            headers.remove_header(name.capitalize())
        return
    for name in fields:
        if hasattr(headers, "popall"):  # multidict (aiohttp): every occurrence
            headers.popall(name, None)
        else:  # case-insensitive in requests' headers; a plain dict holds what was injected as is
            headers.pop(name, None)


# -- the attributes some instrumentations leave out (set from their hooks) ---------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


def set_server(span: Span, url: str) -> None:
    """``server.address`` and ``server.port`` (the port the scheme implies when the URL
    names none) from the request's URL, for instrumentations that leave them out."""
    if not span.is_recording():
        return
    with guarded("setting server.address on an HTTP client span"):
        parts = urllib.parse.urlsplit(url)
        if parts.hostname:
            span.set_attribute(SERVER_ADDRESS, parts.hostname)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        if port:
            span.set_attribute(SERVER_PORT, port)


def set_protocol_version(span: Span, version: object) -> None:
    """``network.protocol.version`` ("1.0", "1.1", "2") from ``http.client``'s and
    urllib3's ``10``/``11``/``20`` or aiohttp's ``HttpVersion(1, 1)``."""
    if not span.is_recording():
        return
    if isinstance(version, int) and version > 0:
        major, minor = divmod(version, 10)
    elif isinstance(version, tuple) and len(version) == 2:
        major, minor = version
    else:
        return
    span.set_attribute(NETWORK_PROTOCOL_VERSION, f"{major}" if major >= 2 and not minor else f"{major}.{minor}")


def set_error_status_code(span: Span, status: object) -> None:
    """``error.type`` is the status code for a 4xx/5xx answer (HTTP client span
    conventions), also where the library raised for it (urllib's ``HTTPError``)."""
    if isinstance(status, int) and status >= 400 and span.is_recording():
        span.set_attribute(ERROR_TYPE, str(status))


def error_type_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    """A ``wrapt`` wrapper for the call an instrumentation makes inside its CLIENT span:
    an exception (connection refused, timeout) sets ``error.type`` to its class name,
    which that instrumentation leaves out (urllib3's; upstream marks it TODO)."""
    try:
        return wrapped(*args, **kwargs)
    except Exception as exc:
        span = get_current_span()
        if span.is_recording():
            span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
        raise


@contextlib.contextmanager
def stable_http_semconv() -> Iterator[None]:
    """While an instrumentor's ``instrument()`` runs, make it choose the stable HTTP
    semantic conventions, for this instrumentor only.

    The instrumentations read their naming mode once, in ``instrument()``, from
    ``OTEL_SEMCONV_STABILITY_OPT_IN``, which the process reads once for every
    instrumentation (Django's, the user's own). Setting that variable for the process
    would also rename the attributes of instrumentations the user installed. Instead,
    only while our instrumentor installs, the mode it reads is ``http`` (stable names
    only), unless the user's own variable asked for ``http`` or ``http/dup`` (old and
    stable names), which is then kept. This uses ``opentelemetry-instrumentation``'s
    private ``_semconv`` module (no public way exists in 0.66b1); should it change, we
    warn and the instrumentation keeps its default names (tests/test_http_clients.py
    checks the names, so an upgrade that breaks this fails there).
    """
    try:
        from opentelemetry.instrumentation._semconv import (
            _OpenTelemetrySemanticConventionStability as Stability,
        )
        from opentelemetry.instrumentation._semconv import (
            _OpenTelemetryStabilitySignalType as Signal,
        )
        from opentelemetry.instrumentation._semconv import _StabilityMode as Mode

        Stability._initialize()
        chosen = Stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
        mode = chosen.get(Signal.HTTP, Mode.DEFAULT)
    except (ImportError, AttributeError):
        logger.warning("tracing_app: cannot select the stable HTTP semantic conventions with this "
                       "opentelemetry-instrumentation; HTTP client spans keep its default attribute names")
        yield
        return
    if mode is not Mode.DEFAULT:
        yield
        return
    Stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = {**chosen, Signal.HTTP: Mode.HTTP}
    try:
        yield
    finally:
        Stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = chosen


class InstrumentorIntegration(Integration):
    """An integration that is an OpenTelemetry instrumentor, named ``"module:Class"``,
    installed with ``hooks`` (``instrument()`` keyword arguments) on our provider.

    When the instrumentor is already in use (``opentelemetry-instrument``, the user's
    own code), theirs stays and ``uninstall()`` never undoes it."""

    def __init__(self, name: str, instrumentor: str, *, error_type_on: tuple[str, str] | None = None,
                 redirect_guard: tuple[str, str, Callable[..., Any]] | None = None, **hooks: Any) -> None:
        """``error_type_on``: ``(module, "Class.method")``, the call the instrumentation
        makes inside its span, to wrap with ``error_type_wrapper``. ``redirect_guard``:
        ``(module, "Class.method", wrapper)``, the library's step that builds a redirect's
        next request, wrapped so that ``PROPAGATE_TO`` holds for that hop too."""
        super().__init__()
        self.name = name
        self._instrumentor_path = instrumentor
        self._wraps = ((*error_type_on, error_type_wrapper),) if error_type_on else ()
        if redirect_guard is not None:
            self._wraps += (redirect_guard,)
        self._hooks = hooks
        self._owned = False
        self._wrapped: list[tuple[str, str]] = []

    def instrumentor(self) -> Any:
        """The instrumentor (one per class: ``BaseInstrumentor`` is a singleton)."""
        module, _, cls = self._instrumentor_path.partition(":")
        return getattr(importlib.import_module(module), cls)()

    def _install(self, config: TracingConfig) -> None:
        instrumentor = self.instrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            logger.debug("tracing_app: %s is already instrumented; keeping that instrumentation", self.name)
            return
        for module, attribute, wrapper in self._wraps:
            # Wrapped first, so the instrumentation's own wrapper ends up outside ours and
            # its span is the current one when ours sees the exception.
            wrapt.wrap_function_wrapper(module, attribute, wrapper)
            self._wrapped.append((module, attribute))
        with stable_http_semconv():
            # raise_exception_on_conflict: a library version the instrumentation does not
            # support fails this install (reported, the others unaffected) instead of
            # leaving it uninstrumented with only a log line.
            instrumentor.instrument(tracer_provider=DelegatingTracerProvider(), raise_exception_on_conflict=True,
                                    **self._hooks)
        self._owned = True

    def _uninstall(self) -> None:
        if self._owned:
            self.instrumentor().uninstrument()
            self._owned = False
        from opentelemetry.instrumentation.utils import unwrap

        while self._wrapped:
            module, attribute = self._wrapped.pop()
            owner_name, _, method = attribute.rpartition(".")
            owner = importlib.import_module(module)
            for part in owner_name.split("."):
                owner = getattr(owner, part)
            unwrap(owner, method)
