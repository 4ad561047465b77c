"""Configuration: the key schema (``keys``), the value parsers (``parsers``) and the
merged, typed ``TracingConfig`` of this process (``config``)."""

from tracing_app.conf.config import Problem, TracingConfig, get_config, resolve
from tracing_app.conf.keys import DEFAULT_INTEGRATIONS, KEYS, KEYS_BY_NAME, Key
from tracing_app.conf.parsers import InvalidValue

__all__ = ["DEFAULT_INTEGRATIONS", "KEYS", "KEYS_BY_NAME", "InvalidValue", "Key", "Problem", "TracingConfig",
           "get_config", "resolve"]
