"""What one export attempt came to, whatever the protocol: ``Outcome``.

The processor decides from it alone: retry (``retryable``, after ``retry_after``),
split the request in two (``too_large``: HTTP 413, gRPC RESOURCE_EXHAUSTED for
the message size), count ``rejected`` spans of an accepted request (OTLP
``partial_success.rejected_spans``), or give up.
"""

from __future__ import annotations

import dataclasses

HINTS = {
    "dns": "the collector's host name does not resolve; check OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT",
    "refused": "nothing listens at that address; is the collector running, and is the port 4318 (OTLP/HTTP)?",
    "timeout": "the collector did not answer in time; check the network path or raise OTLP_TIMEOUT (seconds)",
    "connection": "the connection failed; check that the endpoint speaks OTLP/HTTP (not gRPC, not Jaeger Thrift)",
    "http": "the collector rejected the request",
}
STATUS_HINTS = {
    400: "the collector could not decode the request; is this an OTLP/HTTP protobuf endpoint?",
    401: "the collector wants credentials; set OTLP_HEADERS (e.g. an authorization header)",
    403: "the collector refused the credentials in OTLP_HEADERS",
    404: "no OTLP traces endpoint at this URL; the path should end in /v1/traces",
    413: "the request was too large; it is split in two and retried, lower BATCH_MAX_EXPORT_BYTES to avoid this",
    429: "the collector is rate limiting; it will be retried after Retry-After",
    503: "the collector is unavailable or overloaded; it will be retried",
}


@dataclasses.dataclass(frozen=True)
class Outcome:
    ok: bool
    kind: str = ""  # "", "dns", "refused", "timeout", "connection", "http", "grpc"
    detail: str = ""
    retryable: bool = False
    retry_after: float | None = None  # seconds, from the server's Retry-After
    status: int = 0  # the HTTP status
    too_large: bool = False  # the request was refused for its size: send it in smaller parts
    rejected: int = 0  # accepted, but the collector dropped this many of its spans (partial_success)
    advice: str = ""  # a hint for the user, when the tables below do not say it better

    @property
    def hint(self) -> str:
        return self.advice or STATUS_HINTS.get(self.status) or HINTS.get(self.kind, "")

    def describe(self) -> str:
        return f"{self.detail} ({self.hint})" if self.hint else self.detail


SENT = Outcome(ok=True)


def accepted_with_rejections(rejected: int, message: str) -> Outcome:
    """An answer of success whose ``partial_success`` says ``rejected`` spans were dropped."""
    if rejected <= 0 and not message:
        return SENT
    return Outcome(True, "partial", f"the collector rejected {rejected} span(s): {message or 'no reason given'}",
                   rejected=max(0, rejected))
