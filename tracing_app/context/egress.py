"""Where outgoing calls may carry trace context and baggage: ``should_propagate(host)``,
the one place that decides it for every client (HTTP, gRPC): only our own services
(``TRACING["PROPAGATE_TO"]``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators import textmap

SINGLE_LABEL = "<single-label>"  # matches hosts without a dot: compose/Kubernetes service names


HOST_CACHE_SIZE = 256
MAX_CACHED_HOST = 253  # the longest DNS name


class TargetAllowlist:
    """Host patterns: an exact name, ``*.suffix``, a CIDR network, or ``<single-label>``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.single_label = False
        self.anything = False
        for pattern in patterns:
            pattern = pattern.strip().lower()
            if pattern == "*":
                self.anything = True
            elif pattern == SINGLE_LABEL:
                self.single_label = True
            elif pattern.startswith("*."):
                self.suffixes.append(pattern[1:])
            elif "/" in pattern:
                self.networks.append(ipaddress.ip_network(pattern, strict=False))
            else:
                self.exact.add(pattern)
        self._allows_host = functools.lru_cache(maxsize=HOST_CACHE_SIZE)(self._decide)

    def allows(self, target: str) -> bool:
        """Whether ``target`` (host, URL, gRPC target) may receive trace context."""
        # Cached by host, never by the whole target: a URL's path and query string would make
        # each entry as big as the URL (and rarely hit). At most HOST_CACHE_SIZE hosts of
        # MAX_CACHED_HOST characters each are kept.
        host = _host_only(target)
        return self._allows_host(host) if len(host) <= MAX_CACHED_HOST else self._decide(host)

    def _decide(self, host: str) -> bool:
        if not host:
            return False
        if self.anything or host in self.exact:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            return any(address in network for network in self.networks)
        if self.single_label and "." not in host:
            return True
        return any(host.endswith(suffix) for suffix in self.suffixes)


def _host_only(target: str) -> str:
    """``host`` out of ``host``, ``host:port``, ``[v6]:port``, a URL or a gRPC target like ``dns:///host:port``."""
    target = target.strip().lower()
    if target.startswith(("unix:", "unix-abstract:")):
        return "localhost"
    if target.startswith(("dns:", "ipv4:", "ipv6:")):
        # gRPC name syntax: dns:[//dns-server/]host[:port], ipv4:addr[:port][,addr...]
        target = target.split(":", 1)[1].rsplit("/", 1)[-1].split(",", 1)[0]
    elif "://" in target:
        target = target.split("://", 1)[1]
    target = target.split("/", 1)[0].rsplit("@", 1)[-1]
    if target.startswith("["):
        return target[1:].split("]", 1)[0]
    if target.count(":") == 1:
        target = target.split(":", 1)[0]
    return target.rstrip(".")


_compiled: tuple[object, TargetAllowlist] | None = None


def current_allowlist() -> TargetAllowlist:
    """The allowlist of the current config, compiled once per config object."""
    global _compiled
    from tracing_app.conf import get_config

    config = get_config()
    compiled = _compiled
    if compiled is None or compiled[0] is not config:
        compiled = _compiled = (config, TargetAllowlist(config.propagate_to))
    return compiled[1]


def should_propagate(target: str) -> bool:
    """May an outgoing call to ``target`` carry trace context and baggage?

    ``target`` is a host, ``host:port``, URL or gRPC target. True only for hosts
    matching ``TRACING["PROPAGATE_TO"]`` (default: our own services: single-label
    service names, localhost, ``*.internal``/``*.local``/cluster names, private networks).
    """
    try:
        return current_allowlist().allows(target)
    except Exception:
        return False


def inject(carrier: object, target: str, setter: textmap.Setter = textmap.default_setter,
           context: Context | None = None) -> bool:
    """Inject the current trace context and baggage into ``carrier`` when ``target`` is
    allowed; returns whether it did. For outgoing HTTP/gRPC calls."""
    if not should_propagate(target):
        return False
    propagate.inject(carrier, context=context, setter=setter)
    return True
