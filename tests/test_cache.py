"""Django's cache framework: a CLIENT span per operation, sync and async, on every backend
Django ships: local memory, file, database (on the test database), Redis (the real server, its
own database number and key prefix) and Memcached (a memcached this module starts; without the
binary those tests are skipped and listed, and under TRACING_REQUIRE_SERVICES=1 (CI) they fail)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import call_command
from django.test import override_settings

from tests.e2e.stack import NEEDS_SERVICES, REDIS_URL, require_redis
from tests.tracing_settings import tracing_settings
from tracing_app.conf import get_config
from tracing_app.integrations import cache as traced_cache

REDIS_DB = 13  # this module's own Redis database; keys also carry a per-run prefix
PREFIX = f"tracing-app-tests-{os.getpid()}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memcached_binary() -> str:
    """The memcached executable; without one, fail under TRACING_REQUIRE_SERVICES=1 (CI, where
    .ci/services.sh installs it), else skip and list the test in the run's summary."""
    binary = shutil.which("memcached")
    if binary is not None:
        return binary
    reason = "the Memcached cache backend needs the memcached binary (apt-get install memcached)"
    if os.environ.get("TRACING_REQUIRE_SERVICES") == "1":
        pytest.fail(reason, pytrace=False)
    NEEDS_SERVICES.append(os.environ.get("PYTEST_CURRENT_TEST", reason).rpartition(" ")[0] or reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def memcached_location():
    binary = memcached_binary()
    port = _free_port()
    process = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"memcached did not start: {process.communicate()[0]!r}")
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


BACKENDS = {
    "locmem": ("django.core.cache.backends.locmem.LocMemCache", "django.locmem"),
    "file": ("django.core.cache.backends.filebased.FileBasedCache", "django.filebased"),
    "database": ("django.core.cache.backends.db.DatabaseCache", None),  # the database's own system
    "redis": ("django.core.cache.backends.redis.RedisCache", "redis"),
    "memcached": ("django.core.cache.backends.memcached.PyMemcacheCache", "memcached"),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, tmp_path, db):
    name = request.param
    path, system = BACKENDS[name]
    location = {"locmem": f"tests-{uuid.uuid4()}", "file": str(tmp_path), "database": "tracing_app_test_cache",
                "redis": f"{REDIS_URL}/{REDIS_DB}"}.get(name)
    if name == "redis":
        require_redis("the Redis cache backend")
    if name == "memcached":
        location = request.getfixturevalue("memcached_location")
    if name == "database":
        from django.db import connection

        system = traced_cache.DJANGO_DB_SYSTEMS[connection.vendor]
    with override_settings(CACHES={"default": {"BACKEND": path, "LOCATION": location, "KEY_PREFIX": PREFIX}}):
        if name == "database":
            call_command("createcachetable", verbosity=0)  # inside the test's transaction
        yield name, system
        caches["default"].delete_many([f"{PREFIX}-k{i}" for i in range(3)])


def _await(make):
    """Await ``make()`` from this synchronous test (thread-sensitive calls run in this thread)."""
    async def call():
        return await make()
    return async_to_sync(call)()


def _key(i: int = 0) -> str:
    return f"{PREFIX}-k{i}"


def _run(operation: str):
    """Prepare, then call ``operation`` (sync or async) on the default cache; return its result."""
    base = operation.removeprefix("a") if operation[1:] in traced_cache.OPERATIONS else operation
    if base in ("get", "delete", "incr", "get_many"):
        cache.set(_key(), 1)
    calls = {
        "get": lambda c: c(_key()),
        "set": lambda c: c(_key(), 1),
        "add": lambda c: c(_key(), 1),
        "delete": lambda c: c(_key()),
        "get_many": lambda c: c([_key(), _key(1)]),
        "set_many": lambda c: c({_key(): 1, _key(1): 2}),
        "incr": lambda c: c(_key()),
        "get_or_set": lambda c: c(_key(), 5),
    }
    method = getattr(cache, operation)
    if operation == base:
        return calls[base](method)
    return _await(lambda: calls[base](method))


# operation -> (result, attributes the span adds)
EXPECTED = {
    "get": (1, {"tracing_app.cache.hit": True}),
    "set": (None, {}),
    "add": (True, {}),
    "delete": (True, {}),
    "get_many": ({_key(): 1}, {"tracing_app.cache.hits": 1, "db.operation.batch.size": 2}),
    "set_many": ([], {"db.operation.batch.size": 2}),
    "incr": (2, {}),
    "get_or_set": (5, {"tracing_app.cache.hit": False}),
}
OPERATIONS = [*EXPECTED, *(f"a{name}" for name in EXPECTED)]


def _cache_spans(spans):
    return [s for s in spans.records() if "db.operation.name" in s.attributes
            and s.attributes["db.operation.name"] in traced_cache.TRACED]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_operation_is_one_client_span(backend, operation):
    name, system = backend
    with tracing_settings() as spans:
        result = _run(operation)
    expected_result, expected_attributes = EXPECTED[operation.removeprefix("a") if operation != "add" else "add"]
    assert result == expected_result
    traced = [s for s in _cache_spans(spans) if s.attributes["db.operation.name"] == operation]
    assert len(traced) == 1, [s.name for s in _cache_spans(spans)]
    span = traced[0]
    assert (span.name, span.kind, span.error) == (f"{operation} default", "CLIENT", False)
    assert span.attributes["db.system.name"] == system
    assert {k: span.attributes.get(k) for k in expected_attributes} == expected_attributes
    assert "tracing_app.cache.key" not in span.attributes and _key() not in repr(span.attributes)
    if name == "redis":
        server = urlsplit(REDIS_URL)
        assert (span.attributes["server.address"], span.attributes["server.port"]) == (server.hostname, server.port)
        assert span.attributes["db.namespace"] == str(REDIS_DB)
    if name == "memcached":
        assert span.attributes["server.address"] == "127.0.0.1"
    if name == "database":
        assert span.attributes["db.collection.name"] == "tracing_app_test_cache"
        # The cache's own SQL is traced by the database integration, under the cache span.
        sql = [s for s in spans.records() if s.parent_id == span.span_id]
        assert sql and all("tracing_app_test_cache" in s.name for s in sql)


@pytest.mark.parametrize("operation", ["get", "aget"])
def test_a_miss_returns_the_default_and_says_miss(backend, operation):
    with tracing_settings() as spans:
        call = getattr(cache, operation)
        args = (_key(2), "fallback")
        result = call(*args) if operation == "get" else _await(lambda: call(*args))
    assert result == "fallback"
    (span,) = _cache_spans(spans)
    assert span.attributes["tracing_app.cache.hit"] is False


@pytest.mark.parametrize("operation", ["get_or_set", "aget_or_set"])
def test_get_or_set_of_a_present_key_is_a_hit_with_no_inner_spans(backend, operation):
    cache.set(_key(), "cached")
    with tracing_settings() as spans:
        call = getattr(cache, operation)
        result = call(_key(), "new") if operation == "get_or_set" else _await(lambda: call(_key(), "new"))
    assert result == "cached"
    (span,) = _cache_spans(spans)  # get_or_set calls get (and aget runs get): one span
    assert (span.name, span.attributes["tracing_app.cache.hit"]) == (f"{operation} default", True)


@pytest.mark.django_db
def test_a_cached_none_is_a_hit():
    with override_settings(CACHES={"default": {"BACKEND": BACKENDS["locmem"][0], "LOCATION": "tests-none"}}):
        cache.set("k", None)
        with tracing_settings() as spans:
            assert cache.get("k", "default") is None
    assert _cache_spans(spans)[0].attributes["tracing_app.cache.hit"] is True


@pytest.mark.django_db
def test_a_failed_operation_is_an_error_span_and_still_raises():
    with override_settings(CACHES={"default": {"BACKEND": BACKENDS["locmem"][0], "LOCATION": "tests-err"}}):
        with tracing_settings() as spans, pytest.raises(ValueError):
            cache.incr("missing")
    (span,) = _cache_spans(spans)
    assert span.error and span.attributes["error.type"] == "ValueError"


@pytest.mark.django_db
def test_keys_are_recorded_only_when_allowlisted():
    with override_settings(CACHES={"default": {"BACKEND": BACKENDS["locmem"][0], "LOCATION": "tests-keys"}}):
        with tracing_settings(RECORD_CACHE_KEYS=["product-price:*"]) as spans:
            cache.set("product-price:42", 1)
            cache.set("user:alice@example.com", 1)
            cache.get_many(["product-price:42", "product-price:43"])
    recorded = [s.attributes.get("tracing_app.cache.key") for s in _cache_spans(spans)]
    assert recorded == ["product-price:42", None, None]  # never for multi-key operations
    assert b"alice" not in spans.otlp_bytes()


@pytest.mark.django_db
def test_keys_of_async_forms_and_failed_operations_follow_the_allowlist():
    with override_settings(CACHES={"default": {"BACKEND": BACKENDS["locmem"][0], "LOCATION": "tests-keys-async"}}):
        with tracing_settings(RECORD_CACHE_KEYS=["product-price:*"]) as spans:
            async def calls():
                await cache.aset("product-price:1", 1)
                await cache.aincr("product-price:1")
                await cache.aget_or_set("product-price:2", 3)
                await cache.aadd("user:secret-bob", 1)
            async_to_sync(calls)()
            for failing in (cache.incr, async_to_sync(cache.aincr)):  # "Key 'user:...' not found"
                with pytest.raises(ValueError):
                    failing("user:secret-alice")
    recorded = [(s.name, s.attributes.get("tracing_app.cache.key"), s.error) for s in _cache_spans(spans)]
    assert recorded == [("aset default", "product-price:1", False), ("aincr default", "product-price:1", False),
                        ("aget_or_set default", "product-price:2", False), ("aadd default", None, False),
                        ("incr default", None, True), ("aincr default", None, True)]
    assert b"secret" not in spans.otlp_bytes()  # nor in the exception events or status of the failures


@pytest.mark.django_db
def test_the_switch_off_installs_nothing_and_uninstall_restores_the_backends():
    locmem = {"default": {"BACKEND": BACKENDS["locmem"][0], "LOCATION": "tests-off"}}
    with override_settings(CACHES=locmem):
        traced = caches["default"]
        backend_class = type(traced)
        own_get = backend_class.__dict__[traced_cache.ORIGINALS_ATTRIBUTE]["get"]
        assert traced_cache.TARGET_ATTRIBUTE in traced.__dict__ and backend_class.get is not own_get
        with tracing_settings(INTEGRATIONS={"cache": False}) as spans:
            assert backend_class.__dict__["get"] is own_get
            assert traced_cache.ORIGINALS_ATTRIBUTE not in backend_class.__dict__
            assert "create_connection" not in caches.__dict__
            with override_settings(CACHES={"default": {**locmem["default"], "LOCATION": "tests-off-2"}}):
                fresh = caches["default"]
                fresh.set("k", 1)
                assert fresh.get("k") == 1 and traced_cache.TARGET_ATTRIBUTE not in fresh.__dict__
        assert spans.records() == []
    assert get_config().integration_enabled("cache")


class _SubclassedCache(LocMemCache):
    """A user's backend: overrides ``get`` and calls the base class's."""

    def get(self, key, default=None, version=None):
        return super().get(key, default, version)


_OWN_GET = _SubclassedCache.__dict__["get"]


@pytest.mark.django_db
def test_a_subclass_and_its_base_class_are_each_traced_once_and_restored():
    caches_settings = {"default": {"BACKEND": f"{__name__}._SubclassedCache", "LOCATION": "tests-sub"},
                       "plain": {"BACKEND": BACKENDS["locmem"][0], "LOCATION": "tests-sub-2"}}
    with override_settings(CACHES=caches_settings):
        with tracing_settings() as spans:
            sub, plain = caches["default"], caches["plain"]
            sub.set("k", 1)
            assert sub.get("k") == 1 and sub.get_or_set("k", 2) == 1 and plain.get("k") is None
            # An object the caches handler did not make is not traced.
            assert LocMemCache("tests-sub-3", {}).get("k") is None
            assert _SubclassedCache.get is not _OWN_GET
        recorded = [(s.name, s.attributes.get("tracing_app.cache.hit")) for s in _cache_spans(spans)]
        assert recorded == [("set default", None), ("get default", True), ("get_or_set default", True),
                            ("get plain", False)]
        with tracing_settings(INTEGRATIONS={"cache": False}):
            assert _SubclassedCache.__dict__["get"] is _OWN_GET and "get_or_set" not in _SubclassedCache.__dict__
            assert traced_cache.ORIGINALS_ATTRIBUTE not in LocMemCache.__dict__


class _Clear:
    """An operation that is a callable object, not a function (no __get__)."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


class _OddOperationsCache(LocMemCache):
    clear = _Clear()

    @classmethod
    def touch(cls, key, timeout=None, version=None):
        return cls is _OddOperationsCache


@pytest.mark.django_db
def test_operations_that_are_not_plain_functions_work_as_before_untraced():
    settings = {"default": {"BACKEND": f"{__name__}._OddOperationsCache", "LOCATION": "tests-odd"}}
    with override_settings(CACHES=settings):
        with tracing_settings() as spans:
            odd = caches["default"]
            odd.clear()
            assert odd.touch("k") is True and _OddOperationsCache.clear.calls == 1
            odd.set("k", 1)
        assert [s.name for s in _cache_spans(spans)] == ["set default"]


@pytest.mark.parametrize("required, outcome", [("1", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_memcached_fails_under_ci_and_skips_otherwise(monkeypatch, required, outcome):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("TRACING_REQUIRE_SERVICES", required)
    listed = len(NEEDS_SERVICES)
    with pytest.raises(outcome):
        memcached_binary()
    assert len(NEEDS_SERVICES) == listed + (outcome is pytest.skip.Exception)
    del NEEDS_SERVICES[listed:]


def test_ci_services_script_installs_memcached():
    from pathlib import Path

    script = (Path(__file__).resolve().parent.parent / ".ci" / "services.sh").read_text()
    assert "command -v memcached" in script and "apt-get install -y memcached" in script
