"""The span pipeline: the tracer provider (``provider``), our span class
(``fast_spans``), sampling (``sampling``, ``linked_traces``) and export
(``export``: the batching processor, the OTLP encoder and the HTTP sender)."""
