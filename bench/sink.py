"""A minimal OTLP/HTTP sink for the benchmarks: ``python -m bench.sink PORT [--discard]``.

Answers ``POST /v1/traces`` with 200 and counts the spans per ``service.name``;
``GET /counts`` returns them as JSON. It runs in its own process and decodes
with the protobuf C implementation only, so it takes as little CPU as possible
from the two cores the measured processes share (``tracing_app.devtools.receiver`` builds
a Python object per span: right for tests, too heavy for a load test).
``--discard`` does not even decode: it counts requests and bytes (``{"requests": n,
"bytes": b}``), for a benchmark where the sink shares the cores with the measured server.
"""

from __future__ import annotations

import collections
import gzip
import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

counts: collections.Counter[str] = collections.Counter()
lock = threading.Lock()
DISCARD = False


def service_name(resource) -> str:
    for attribute in resource.attributes:
        if attribute.key == "service.name":
            return attribute.value.string_value
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if DISCARD:
            with lock:
                counts["requests"] += 1
                counts["bytes"] += len(body)
            self._answer(b"", "application/x-protobuf")
            return
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with lock:
            for resource_spans in request.resource_spans:
                name = service_name(resource_spans.resource)
                counts[name] += sum(len(scope.spans) for scope in resource_spans.scope_spans)
        self._answer(b"", "application/x-protobuf")

    def do_GET(self) -> None:  # noqa: N802
        with lock:
            self._answer(json.dumps(counts).encode(), "application/json")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def read_counts(endpoint: str) -> dict[str, int]:
    with urllib.request.urlopen(endpoint + "/counts", timeout=10) as response:
        return json.loads(response.read())


def main() -> None:
    global DISCARD
    DISCARD = "--discard" in sys.argv[2:]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
