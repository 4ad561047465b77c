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
from urllib.parse import unquote


class InvalidValue(ValueError):
    """A setting's value that cannot be used; the message says why."""


class NoEffect(ValueError):  # noqa: N818 (not an error: a value that is as good as unset)
    """An environment value the specification says has no effect (``OTEL_SDK_DISABLED=false``);
    ``warning`` is why, when it also deserves one."""

    def __init__(self, warning: str = "") -> None:
        super().__init__(warning)
        self.warning = warning


class FalseWithWarning(ValueError):  # noqa: N818 (the value is used: False)
    """A Boolean variable with a value that is neither true nor false: the specification
    reads it as false and asks for a warning."""

    value = False


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


def as_pairs(value: Any) -> dict[str, str]:
    """A ``{"k": "v"}`` dict, or the ``k=v,k2=v2`` form. Messages never quote a value: for
    OTLP_HEADERS it is a credential."""
    if isinstance(value, Mapping):
        pairs = dict(value)
    elif isinstance(value, str):
        pairs = {}
        for position, item in enumerate(filter(None, (part.strip() for part in value.split(","))), 1):
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                raise InvalidValue(f"member {position} is not key=value")
            pairs[key.strip()] = val.strip()
    else:
        raise InvalidValue(f"expected a dict of strings, got a {type(value).__name__}")
    wrong = [key for key, text in pairs.items() if not isinstance(key, str) or not isinstance(text, str)]
    if wrong:
        raise InvalidValue(f"expected a dict of strings; not a string: the value of {wrong[0]!r} (or the key)")
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


# -- the OpenTelemetry environment specification's types -----------------------
# (specification/configuration/sdk-environment-variables.md and common.md)

MAX_INTEGER = 2**31 - 1  # the range an Integer variable must support
# A Timeout of 0 means "no limit"; the specification allows "a very long time" instead.
NO_LIMIT_MILLIS = MAX_INTEGER
_INTEGER_RE = re.compile(r"[0-9]+")
_BAD_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def env_integer(value: str, minimum: int = 1) -> int:
    """An Integer variable: decimal digits only, ``minimum`` to 2**31-1."""
    text = value.strip()
    if not _INTEGER_RE.fullmatch(text) or not minimum <= int(text) <= MAX_INTEGER:
        raise InvalidValue(f"expected an integer from {minimum} to {MAX_INTEGER}, got {value!r}")
    return int(text)


def env_count(value: str) -> int:
    """An Integer variable where 0 is meaningful (the attribute, event and link limits)."""
    return env_integer(value, minimum=0)


def as_limit(value: Any) -> int:
    """A count or length limit in TRACING: a whole number, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValue(f"expected a whole number, 0 or more, got {value!r}")
    return value


def as_optional_limit(value: Any) -> int | None:
    """``as_limit``, or None for no limit."""
    return None if value is None else as_limit(value)


def env_duration(value: str) -> float:
    """A Duration variable: whole milliseconds, returned in seconds. Zero is refused: our
    batch loop, like the SDK's BatchSpanProcessor, needs a delay above zero."""
    return env_integer(value, minimum=1) / 1000.0


def env_timeout(value: str) -> float:
    """A Timeout variable: whole milliseconds, returned in seconds; 0 means no limit."""
    millis = env_integer(value, minimum=0)
    return (millis or NO_LIMIT_MILLIS) / 1000.0


def env_disables(value: str) -> bool:
    """``OTEL_SDK_DISABLED``: only ``true`` (any case) has an effect, and means disabled
    (ENABLED False). ``false`` and anything else have none; anything else also warns."""
    text = value.strip().lower()
    if text == "true":
        return False
    raise NoEffect("" if text == "false" else f"expected true or false, got {value!r}; it has no effect")


def env_bool(value: str) -> bool:
    """A Boolean variable: ``true`` (any case) is true; anything else is false, and a value
    other than ``false`` also warns (``NoEffect`` carries the warning and the value False)."""
    text = value.strip().lower()
    if text == "true":
        return True
    if text == "false":
        return False
    raise FalseWithWarning(f"expected true or false, got {value!r}; read as false")


def env_pairs(value: str) -> dict[str, str]:
    """A ``key1=value1,key2=value2`` variable (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS):
    keys and values percent-decoded (``,`` and ``=`` inside them must be written %2C and %3D),
    surrounding whitespace dropped, empty members skipped. A member without ``=``, an empty
    key, a ``%`` not followed by two hex digits or bytes that are not UTF-8 discard the whole
    variable. Messages name the member's position, never its text (it may hold a token)."""
    pairs: dict[str, str] = {}
    for position, member in enumerate(value.split(","), 1):
        if not member.strip():
            continue
        key, sep, text = member.partition("=")
        if not sep or not key.strip():
            raise InvalidValue(f"member {position} is not key=value")
        if _BAD_PERCENT_RE.search(member):
            raise InvalidValue(f"member {position} has a % that is not followed by two hex digits")
        try:
            pairs[unquote(key.strip(), errors="strict")] = unquote(text.strip(), errors="strict")
        except UnicodeDecodeError:
            raise InvalidValue(f"member {position} is not UTF-8 once percent-decoded") from None
    return pairs


def env_choice(*choices: str, unsupported: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """An Enum variable: one of ``choices``, in any case. Values the specification knows but
    we do not implement (``unsupported``: value -> why) are refused with that reason."""
    unsupported = unsupported or {}

    def parse(value: str) -> str:
        text = value.strip().lower()
        if text in unsupported:
            raise InvalidValue(f"{text!r} is not supported: {unsupported[text]}")
        return choice(*choices)(text)

    return parse


def env_propagator_names(value: str) -> tuple[str, ...]:
    """OTEL_PROPAGATORS: as ``as_propagator_names``; a name no installed package provides
    makes the whole variable ignored (an unrecognised Enum value, the specification says)."""
    from tracing_app.conf.environment import known_propagators

    names = as_propagator_names(value)
    unknown = sorted(set(names) - known_propagators())
    if unknown:
        raise InvalidValue(f"no propagator named {', '.join(map(repr, unknown))} is installed")
    return names


def as_propagator_names(value: Any) -> tuple[str, ...]:
    """OTEL_PROPAGATORS / TRACING["PROPAGATORS"]: names, lower-cased (it is an Enum) and
    deduplicated in order (the specification: each propagator registered once). ``none``
    means no propagator at all; like the SDK's, it wins over names beside it."""
    names = tuple(dict.fromkeys(name.lower() for name in as_names(value)))
    return () if "none" in names else names
