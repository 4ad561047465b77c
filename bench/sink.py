"""A minimal OTLP/HTTP sink for the benchmarks: ``python -m bench.sink PORT [--discard | --defer]``.

Answers ``POST /v1/traces`` with 200 and counts the spans per ``service.name``;
``GET /counts`` returns them as JSON. It runs in its own process and decodes
with the protobuf C implementation only, so it takes as little CPU as possible
from the two cores the measured processes share (``tracing_app.devtools.receiver`` builds
a Python object per span: right for tests, too heavy for a load test).
``--discard`` does not even decode: it counts requests and bytes (``{"requests": n,
"bytes": b}``), for a benchmark where the sink shares the cores with the measured server.
``--defer`` does not decode while spans arrive either: it appends each body to a file and
decodes them all when ``/counts`` is asked, after the measurement, so the per-service span
counts are there but their CPU is not spent while the measured servers run.
"""

from __future__ import annotations

import collections
import gzip
import json
import struct
import sys
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

counts: collections.Counter[str] = collections.Counter()
lock = threading.Lock()
DISCARD = False
DEFERRED = None  # with --defer: the file that holds the bodies not decoded yet


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
        gzipped = (self.headers.get("Content-Encoding") or "").lower() == "gzip"
        if DEFERRED is not None:
            with lock:
                DEFERRED.write(struct.pack("<?I", gzipped, len(body)) + body)
        else:
            count(body, gzipped)
        self._answer(b"", "application/x-protobuf")

    def do_GET(self) -> None:  # noqa: N802
        if DEFERRED is not None:
            decode_deferred()
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


def count(body: bytes, gzipped: bool) -> None:
    if gzipped:
        body = gzip.decompress(body)
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    with lock:
        for resource_spans in request.resource_spans:
            name = service_name(resource_spans.resource)
            counts[name] += sum(len(scope.spans) for scope in resource_spans.scope_spans)


def decode_deferred() -> None:
    with lock:
        DEFERRED.seek(0)
        stored = DEFERRED.read()
        DEFERRED.seek(0)
        DEFERRED.truncate()
    offset, head = 0, struct.calcsize("<?I")
    while offset < len(stored):
        gzipped, size = struct.unpack_from("<?I", stored, offset)
        offset += head
        count(stored[offset:offset + size], gzipped)
        offset += size


def read_counts(endpoint: str) -> dict[str, int]:
    with urllib.request.urlopen(endpoint + "/counts", timeout=10) as response:
        return json.loads(response.read())


def main() -> None:
    global DISCARD, DEFERRED
    DISCARD = "--discard" in sys.argv[2:]
    if "--defer" in sys.argv[2:]:
        DEFERRED = tempfile.TemporaryFile()
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
