"""``manage.py tracing_tail``: receive OTLP on localhost and print each finished trace as a waterfall.

Point a process's exporter at it with one variable, e.g.
``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`` (4318 is also the default
endpoint, so a project with no endpoint configured reaches it as it is). OTLP/gRPC
is received on 4317 too when ``grpcio`` is installed (the ``grpc`` extra).
Stops on Ctrl-C or SIGTERM, printing the traces still waiting for their quiet period.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tracing_app.devtools.receiver import TRACES_PATH, OTLPGrpcReceiver, OTLPReceiver
from tracing_app.devtools.waterfall import TraceAssembler, TraceFilter, render_waterfall

POLL_SECONDS = 0.2


class Command(BaseCommand):
    help = "Receive OTLP/HTTP spans on localhost and print each finished trace as a waterfall."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=4318, help="OTLP/HTTP port (default 4318; 0 picks one).")
        parser.add_argument("--grpc-port", type=int, default=None,
                            help="OTLP/gRPC port (default 4317, skipped with a note when busy; 0 picks one).")
        parser.add_argument("--no-grpc", action="store_true", help="Receive OTLP/HTTP only.")
        parser.add_argument("--service", action="append", default=[],
                            help="Only traces with a span of this service (repeatable).")
        parser.add_argument("--min-duration", type=float, default=0.0, metavar="MS",
                            help="Only traces lasting at least this many milliseconds.")
        parser.add_argument("--errors", action="store_true", help="Only traces with an error span.")
        parser.add_argument("--quiet", type=float, default=6.0, metavar="SECONDS",
                            help="A trace is finished after this long without a new span (default 6, "
                                 "longer than the exporters' default 5 s batch delay).")
        parser.add_argument("--width", type=int, default=30, help="Width of the time bar in characters.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["quiet"] < 0 or options["width"] < 1 or options["min_duration"] < 0:
            raise CommandError("--quiet and --min-duration must be >= 0 and --width >= 1")
        assembler = TraceAssembler(quiet=options["quiet"])
        shown = TraceFilter(services=tuple(options["service"]), min_duration_ms=options["min_duration"],
                            errors_only=options["errors"])
        stop = threading.Event()
        try:
            receiver = OTLPReceiver(options["host"], options["port"], on_spans=assembler.add, keep=False)
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from None
        grpc_receiver = None if options["no_grpc"] else self._grpc_receiver(options, assembler)
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        receiver.start()
        self.stdout.write(f"tracing_tail: receiving OTLP/HTTP on {receiver.endpoint}{TRACES_PATH}; "
                          f"set OTEL_EXPORTER_OTLP_ENDPOINT={receiver.endpoint}")
        if grpc_receiver is not None:
            grpc_receiver.start()
            self.stdout.write(f"tracing_tail: receiving OTLP/gRPC on {grpc_receiver.endpoint}; set "
                              f"OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT={grpc_receiver.endpoint}")
        self.stdout.flush()
        try:
            while not stop.wait(POLL_SECONDS):
                self._print(assembler.finished(), shown, options["width"])
        except KeyboardInterrupt:
            pass
        finally:
            receiver.stop()
            if grpc_receiver is not None:
                grpc_receiver.stop()
            signal.signal(signal.SIGTERM, previous)
            self._print(assembler.finished(everything=True), shown, options["width"])

    def _grpc_receiver(self, options: dict[str, Any], assembler: TraceAssembler) -> OTLPGrpcReceiver | None:
        """The gRPC receiver; without an explicit --grpc-port, a missing grpcio or a busy
        4317 (a local Jaeger, say) only costs the gRPC side, with a note."""
        explicit = options["grpc_port"] is not None
        try:
            return OTLPGrpcReceiver(options["host"], options["grpc_port"] if explicit else 4317, assembler.add)
        except (ImportError, OSError) as exc:
            if explicit:
                raise CommandError(f"cannot receive OTLP/gRPC on {options['host']}:{options['grpc_port']}: "
                                   f"{exc}") from None
            self.stderr.write(f"tracing_tail: OTLP/gRPC not received ({exc}); OTLP/HTTP only")
            return None

    def _print(self, traces: list, shown: TraceFilter, width: int) -> None:
        for spans, continued in traces:
            if shown.accepts(spans):
                self.stdout.write(render_waterfall(spans, bar_width=width, continued=continued) + "\n")
                self.stdout.flush()
