"""Developer tools: a local OTLP receiver (``receiver``), decoded span records
(``records``) and the terminal waterfall (``waterfall``) behind ``tracing_tail``."""
