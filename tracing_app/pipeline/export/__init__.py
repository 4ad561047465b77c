"""Getting spans out of the process: the export processor (queue, batches, retries,
accounting), the OTLP protobuf encoder and the OTLP/HTTP sender."""
