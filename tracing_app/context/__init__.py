"""What travels between services and what may leave the process: the W3C codec
(``w3c``), our propagators (``propagators``), the carriers that hold context in
messages (``carriers``), business context in baggage (``business``), the trust
policy for incoming context (``incoming``), where outgoing calls may send it
(``egress``) and what telemetry may record (``privacy``)."""
