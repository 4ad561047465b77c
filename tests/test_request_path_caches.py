"""Caches on the request path hold a documented number of bytes, whatever requests send:
the statement cache (tests/test_db_statements.py), the egress allowlist's host cache, the
baggage hash cache."""

from tracing_app.context import business, egress


def test_the_egress_cache_keeps_hosts_not_urls():
    allowlist = egress.TargetAllowlist(["*.internal"])
    for i in range(1000):  # one host, a thousand long URLs
        assert allowlist.allows(f"https://api.internal/search?q={'x' * 4000}{i}")
    assert allowlist._allows_host.cache_info().currsize == 1
    assert not allowlist.allows("https://" + "a" * 300 + ".example/")  # too long to cache: decided, not kept
    assert allowlist._allows_host.cache_info().currsize == 1


def test_the_baggage_hash_cache_keeps_bounded_values():
    processor = business.BaggageSpanProcessor(("enduser.id",), hashed=("enduser.id",))
    for i in range(2000):
        processor.attributes({"enduser.id": f"{i}-" + "u" * 10_000})
    info = processor.hash_value.cache_info()
    assert info.currsize <= info.maxsize  # each key at most MAX_VALUE_LENGTH characters
    assert business.MAX_VALUE_LENGTH == 256
