"""Building the tracer provider, once per process, from a ``TracingConfig``.

The provider is also registered as OpenTelemetry's global provider so that the
user's own ``trace.get_tracer(...)`` calls land in it. The global can be set only
once per process; when something else (say ``opentelemetry-instrument``) set it
first, we keep ours for our integrations and say so in one warning, instead of
assuming a second ``set_tracer_provider`` won.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points

from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider, sampling

from tracing_app.conf import TracingConfig
from tracing_app.context.business import BaggageSpanProcessor
from tracing_app.context.propagators import BaggagePropagator, GatedCompositePropagator, TraceContextPropagator
from tracing_app.pipeline.export.otlp_http import HttpTransport, sender_options
from tracing_app.pipeline.export.processor import ExportProcessor, ExportStats, SdkExporterTransport, Transport
from tracing_app.pipeline.fast_spans import fast_tracer
from tracing_app.pipeline.linked_traces import LinkedTraceSampler
from tracing_app.pipeline.resource import build_resource, on_role_change, role_attributes
from tracing_app.pipeline.sampling import RuleSampler, never_sampled

logger = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "tracing_app"
# Our bounded W3C propagators replace the SDK's under the standard names (see propagation.py).
BUILTIN_PROPAGATORS = {"tracecontext": TraceContextPropagator, "baggage": BaggagePropagator}

_lock = threading.Lock()
_provider: TracerProvider | None = None
_processor: ExportProcessor | None = None
_config: TracingConfig | None = None  # what _provider was built from
_tracers: dict[str, trace.Tracer] = {}


def build_sampler(config: TracingConfig) -> sampling.Sampler:
    name, ratio = config.sampler, config.sample_ratio
    if name.endswith("traceidratio"):
        # The ratio samplers apply SAMPLING_RULES and never sample health checks (sampling.py).
        root: sampling.Sampler = RuleSampler(ratio, config.sampling_rules, never_sampled(config))
    else:
        root = sampling.ALWAYS_OFF if name.endswith("always_off") else sampling.ALWAYS_ON
    sampler = sampling.ParentBased(root) if name.startswith("parentbased_") else root
    # New traces linked to a publisher keep the publisher's decision (linked_traces.py).
    return LinkedTraceSampler(sampler)


def build_transport_factory(config: TracingConfig) -> Callable[[], Transport] | None:
    """What ``ExportProcessor`` calls, in each process, to build that process's transport."""
    if config.exporter == "none":
        return None
    endpoint, headers = config.traces_endpoint, dict(config.otlp_headers)
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return lambda: SdkExporterTransport(ConsoleSpanExporter(service_name=config.service_name), "console")
    if config.otlp_protocol == "grpc":
        def grpc_transport() -> Transport:
            from tracing_app.pipeline.export.otlp_grpc import GrpcTransport

            return GrpcTransport(endpoint, headers, **grpc_options(config))

        return grpc_transport
    options = sender_options(config)
    return lambda: HttpTransport(endpoint, headers, **options)


def grpc_options(config: TracingConfig) -> dict[str, object]:
    """``GrpcTransport``'s keyword arguments for ``config``: TLS for a schemeless endpoint,
    compression and the certificate files."""
    return {"insecure": config.otlp_insecure, "compression": config.otlp_compression,
            "certificate": config.otlp_certificate, "client_key": config.otlp_client_key,
            "client_certificate": config.otlp_client_certificate}


def build_processor(config: TracingConfig) -> ExportProcessor | None:
    factory = build_transport_factory(config)
    if factory is None:
        return None
    return ExportProcessor(
        factory,
        max_queue_size=config.batch_max_queue_size,
        max_queue_bytes=config.batch_max_queue_bytes,
        max_export_batch_size=config.batch_max_export_size,
        max_export_bytes=config.batch_max_export_bytes,
        schedule_delay=config.batch_schedule_delay,
        export_timeout=config.batch_export_timeout,
        request_timeout=config.otlp_timeout,
        shutdown_timeout=config.shutdown_timeout,
        endpoint=config.traces_endpoint if config.exporter == "otlp" else "",
    )


def load_propagator(name: str) -> TextMapPropagator:
    """A propagator by its OTEL_PROPAGATORS name: W3C built in, others by entry point."""
    if name in BUILTIN_PROPAGATORS:
        return BUILTIN_PROPAGATORS[name]()
    for entry in entry_points(group="opentelemetry_propagator", name=name):
        return entry.load()()
    raise LookupError(f"no propagator named {name!r} is installed")


def build_propagator(config: TracingConfig) -> TextMapPropagator:
    found = []
    for name in config.propagators:
        try:
            found.append(load_propagator(name))
        except Exception:
            # Reported by the system check tracing_app.E005; keep the others.
            logger.debug("tracing_app: propagator %r skipped", name, exc_info=True)
    return GatedCompositePropagator(found)


def build_span_limits(config: TracingConfig) -> SpanLimits:
    """The SDK's ``SpanLimits`` from ``config``, every limit given, so that the SDK reads no
    OTEL_*_LIMIT variable itself: it raises ``ValueError`` for an empty or invalid one,
    which would leave the process without tracing. conf has read them by the specification."""
    def length(value: int | None) -> int:
        return SpanLimits.UNSET if value is None else value

    return SpanLimits(
        max_attributes=config.span_attribute_count_limit,
        max_span_attributes=config.span_attribute_count_limit,
        max_events=config.span_event_count_limit,
        max_links=config.span_link_count_limit,
        max_event_attributes=config.event_attribute_count_limit,
        max_link_attributes=config.link_attribute_count_limit,
        max_attribute_length=length(config.attribute_value_length_limit),
        max_span_attribute_length=length(config.span_attribute_value_length_limit),
    )


def build_provider(config: TracingConfig, processor: ExportProcessor | None = None) -> TracerProvider:
    """A provider exporting through ``processor`` (default: ``build_processor(config)``)."""
    processor = processor if processor is not None else build_processor(config)
    # shutdown_on_exit: the SDK's own atexit hook would flush without our bound;
    # install_provider registers ours instead.
    provider = TracerProvider(resource=build_resource(config), sampler=build_sampler(config),
                              span_limits=build_span_limits(config), shutdown_on_exit=False)
    add_processors(provider, config, processor)
    return provider


def add_processors(provider: TracerProvider, config: TracingConfig, exporting: SpanProcessor | None) -> None:
    """The baggage-to-attributes processor (first: it must run before a span can end), then ``exporting``."""
    enriching = BaggageSpanProcessor.from_config(config)
    if enriching is not None:
        provider.add_span_processor(enriching)
    if exporting is not None:
        provider.add_span_processor(exporting)


def install_provider(config: TracingConfig) -> TracerProvider:
    """Build, register and return this process's provider; later calls return the same one."""
    global _provider, _processor, _config
    with _lock:
        if _provider is not None:
            return _provider
        _config = config
        _processor = build_processor(config)
        _provider = build_provider(config, _processor)
        _tracers.clear()
        propagate.set_global_textmap(build_propagator(config))
        trace.set_tracer_provider(_provider)
        if trace.get_tracer_provider() is not _provider:
            logger.warning(
                "tracing_app: another OpenTelemetry tracer provider was registered first; "
                "tracing_app's integrations use their own, spans from trace.get_tracer() go to the other one"
            )
        atexit.register(shutdown)
        return _provider


def update_resource(role: str) -> None:
    """Give this process's provider (and every tracer it made) the resource of ``role``."""
    from tracing_app.conf import get_config

    with _lock:
        if _provider is None:
            return
        changes = Resource(role_attributes(_config or get_config(), role))
        # The SDK's own way to change a built provider's resource (it uses it after a
        # fork): merged into the provider's and handed to each tracer it made. Older
        # SDKs have no such method; there, tracers made from now on get it.
        update = getattr(_provider, "_update_resource", None)
        if update is not None:
            update(changes)
        else:
            _provider._resource = _provider.resource.merge(changes)  # noqa: SLF001
        _tracers.clear()  # our fast tracers copied the old resource


on_role_change(update_resource)


def get_provider() -> TracerProvider | None:
    return _provider


def swap_provider(provider: TracerProvider | None) -> TracerProvider | None:
    """Make ``provider`` the one our integrations use; return the previous one (for tests)."""
    global _provider
    with _lock:
        previous, _provider = _provider, provider
        _tracers.clear()
        return previous


def get_tracer(name: str = INSTRUMENTATION_NAME) -> trace.Tracer:
    """A tracer from tracing_app's provider, or a no-op tracer when tracing is off."""
    tracer = _tracers.get(name)
    if tracer is None:
        provider = _provider
        tracer = fast_tracer(provider.get_tracer(name)) if provider is not None else trace.NoOpTracer()
        _tracers[name] = tracer
    return tracer


def force_flush(timeout_millis: int | None = None) -> bool:
    """Export what has ended so far. Waits at most ``timeout_millis`` (default: SHUTDOWN_TIMEOUT).

    False when the time ran out or spans were dropped since the previous flush (the
    exporter cannot be built, the collector is down or refusing...; ``export_stats()``
    counts why). True with tracing off or EXPORTER='none': nothing was to be sent.
    """
    provider = _provider
    if provider is None:
        return True
    if timeout_millis is None:
        processor = _processor
        timeout_millis = int((processor.shutdown_timeout if processor else 3.0) * 1000)
    return provider.force_flush(timeout_millis)


def shutdown() -> None:
    """Flush what is pending (bounded by SHUTDOWN_TIMEOUT) and stop exporting. Safe to call more than once."""
    provider = _provider
    if provider is not None:
        provider.shutdown()


def export_stats() -> ExportStats | None:
    """This process's span accounting, or None when nothing is exported (tracing off, EXPORTER='none').

    An ``ExportStats`` snapshot: ``ended == exported + dropped + pending``, with ``dropped``
    split by reason in ``dropped_by_reason`` (``queue_full``, ``rejected``,
    ``partially_rejected``, ``timed_out``, ``shutdown``, ``too_large``, ``no_exporter``,
    ``error``); see ``ExportStats``. Counted since the process started (or forked).
    """
    processor = _processor
    return processor.snapshot() if processor is not None else None


def exporter_problem() -> str | None:
    """Why this process would export nothing, when nobody said so yet; else None.

    Builds the process's transport now. Called where a process starts serving (a
    Celery pool child, a gunicorn worker), so that a broken exporter is reported
    once at start-up. A transport that cannot be built is logged by the processor
    itself, once per process of any kind, so it is not returned here again.
    """
    from tracing_app.conf import get_config

    config = get_config()
    if not config.enabled or config.exporter == "none":
        return None
    if _provider is None:
        return "tracing_app's tracer provider was not built in this process (was django.setup() run?)"
    processor = _processor
    if processor is None:
        return "no span processor is installed"
    processor.transport()
    return None
