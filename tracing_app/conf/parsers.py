"""Parsers for ``TRACING`` values and ``OTEL_*`` variables: each takes a raw value and
returns the parsed one or raises ``InvalidValue`` saying why.

Raw values come from ``settings.TRACING`` (Python objects) or the environment
(strings in the forms the OpenTelemetry environment specification uses:
``true``/``false``, comma-separated lists, ``key=value,...`` pairs, milliseconds).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


class InvalidValue(ValueError):
    """A setting's value that cannot be used; the message says why."""


# -- parsers: each takes a raw value (from settings or the environment) --------


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise InvalidValue(f"expected a boolean, got {value!r}")


def as_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"expected a non-empty string, got {value!r}")
    return value.strip()


def as_optional_text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string, got {value!r}")
    return value.strip()


def choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in choices:
            raise InvalidValue(f"expected one of {', '.join(choices)}; got {value!r}")
        return text

    return parse


def as_ratio(value: Any) -> float:
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise InvalidValue(f"expected a number from 0 to 1, got {value!r}") from None
    if not 0.0 <= ratio <= 1.0 or isinstance(value, bool):
        raise InvalidValue(f"expected a number from 0 to 1, got {value!r}")
    return ratio


def positive(kind: type) -> Callable[[Any], int | float]:
    def parse(value: Any) -> int | float:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise InvalidValue(f"expected a positive {kind.__name__}, got {value!r}") from None
        if number <= 0 or isinstance(value, bool):
            raise InvalidValue(f"expected a positive {kind.__name__}, got {value!r}")
        return number

    return parse


def millis_to_seconds(value: Any) -> float:
    """OTEL_* timeouts and delays are milliseconds by the specification."""
    return positive(float)(value) / 1000.0


def as_pairs(value: Any) -> dict[str, str]:
    """A ``{"k": "v"}`` dict, or the ``k=v,k2=v2`` form the OTEL_* variables use."""
    if isinstance(value, Mapping):
        pairs = dict(value)
    elif isinstance(value, str):
        pairs = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                raise InvalidValue(f"expected key=value pairs, got {item!r}")
            pairs[key.strip()] = val.strip()
    else:
        raise InvalidValue(f"expected a dict of strings, got {value!r}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
        raise InvalidValue(f"expected a dict of strings, got {value!r}")
    return pairs


def as_names(value: Any) -> tuple[str, ...]:
    """A list of strings, or the comma-separated form the OTEL_* variables use."""
    if isinstance(value, str):
        return tuple(filter(None, (part.strip() for part in value.split(","))))
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidValue(f"expected a list of strings, got {value!r}")


def as_patterns(value: Any) -> tuple[str, ...]:
    names = as_names(value)
    for pattern in names:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidValue(f"{pattern!r} is not a regular expression: {exc}") from None
    return names


def as_lower_names(value: Any) -> tuple[str, ...]:
    return tuple(name.lower() for name in as_names(value))
