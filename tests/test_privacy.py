"""Privacy defaults, asserted on the OTLP bytes the exporter would send."""

import pytest
from celery import shared_task
from django.db import connection

from tests.tracing_settings import tracing_settings
from tracing_app.conf import resolve
from tracing_app.integrations.database.statements import redact

pytestmark = pytest.mark.urls("tests.business_urls")


@shared_task(name="tests.charge_card")
def charge_card(card_number, cvv=None):
    return "ok"


def server_span(spans):
    return next(span for span in spans.records() if span.kind == "SERVER")


def test_query_values_are_redacted_unless_allowed_key_by_key(client):
    with tracing_settings() as default:
        client.get("/api/whoami/?token=SECRET-Q&page=2&flag")
    assert b"SECRET-Q" not in default.otlp_bytes()
    assert server_span(default).attributes["url.query"] == "token=REDACTED&page=REDACTED&flag"
    with tracing_settings(RECORD_QUERY_PARAMS=["page"]) as allowed:
        client.get("/api/whoami/?token=SECRET-Q&page=2")
    assert server_span(allowed).attributes["url.query"] == "token=REDACTED&page=2"
    assert b"SECRET-Q" not in allowed.otlp_bytes()


def test_a_request_without_a_query_string_has_no_url_query(client):
    with tracing_settings() as default:
        client.get("/api/whoami/")
    assert "url.query" not in server_span(default).attributes


def test_headers_are_not_recorded_unless_allowed_and_never_credentials(client):
    headers = {"HTTP_AUTHORIZATION": "Bearer SECRET-AUTH", "HTTP_COOKIE": "sessionid=SECRET-COOKIE",
               "HTTP_X_API_SECRET": "SECRET-H", "HTTP_X_REQUEST_ID": "req-1"}
    with tracing_settings() as default:
        client.get("/api/whoami/", **headers)
    with tracing_settings(RECORD_REQUEST_HEADERS=["x-request-id"], RECORD_RESPONSE_HEADERS=["content-type"]) as some:
        client.get("/api/whoami/", **headers)
    for spans in (default, some):
        exported = spans.otlp_bytes()
        for secret in (b"SECRET-AUTH", b"SECRET-COOKIE", b"SECRET-H"):
            assert secret not in exported
    assert not [k for k in server_span(default).attributes if ".header." in k]
    assert server_span(some).attributes["http.request.header.x-request-id"] == ("req-1",)
    assert server_span(some).attributes["http.response.header.content-type"] == ("application/json",)


def test_credential_headers_are_refused_in_settings(client):
    config = resolve({"RECORD_REQUEST_HEADERS": ["Authorization"], "RECORD_RESPONSE_HEADERS": ["set-cookie"]}, {})
    assert [p.check_id for p in config.problems] == ["tracing_app.E003", "tracing_app.E003"]
    assert config.record_request_headers == () and config.record_response_headers == ()
    with tracing_settings(RECORD_REQUEST_HEADERS=["authorization", "cookie"]) as spans:
        client.get("/api/whoami/", HTTP_AUTHORIZATION="Bearer SECRET-AUTH", HTTP_COOKIE="a=SECRET-COOKIE")
    assert b"SECRET" not in spans.otlp_bytes()


@pytest.mark.django_db
def test_sql_literals_and_parameters_never_reach_spans():
    with tracing_settings() as spans:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 'SECRET-LITERAL' AS a, 4111111111111111 AS card, %s AS b", ["SECRET-PARAM"])
    exported = spans.otlp_bytes()
    assert b"SECRET-LITERAL" not in exported and b"SECRET-PARAM" not in exported and b"4111" not in exported
    query = next(span for span in spans.records() if span.kind == "CLIENT").attributes["db.query.text"]
    assert query == "SELECT ? AS a, ? AS card, ? AS b"


@pytest.mark.parametrize(("sql", "normalized"), [
    ('SELECT "t"."id" FROM "t" WHERE "t"."sku" = %s LIMIT 21', 'SELECT "t"."id" FROM "t" WHERE "t"."sku" = ? LIMIT ?'),
    ("select * from t where a = %(name)s and b = %s", "select * from t where a = ? and b = ?"),
    ("select * from u where email='a@b.c' and t1.x=3.5e2 and y = $1",
     "select * from u where email=? and t1.x=? and y = $1"),
    ("insert into x values (E'it''s', $$secret$$, $tag$s$tag$, 0xFF)", "insert into x values (?, ?, ?, ?)"),
    ("select 'unterminated secret", "select ?"),
    ("select 'a\\' , 'secret'", "select ? , ?"),
])
def test_redact(sql, normalized):
    assert redact(sql) == normalized


def test_mysql_backslash_escapes():
    assert redact("select 'it\\'s secret' from t", backslash_escapes=True) == "select ? from t"


def test_task_arguments_are_recorded_only_when_enabled_per_task():
    with tracing_settings() as default:
        charge_card.apply(args=["SECRET-CARD"], kwargs={"cvv": "SECRET-CVV"})
    assert b"SECRET-CARD" not in default.otlp_bytes() and b"SECRET-CVV" not in default.otlp_bytes()
    assert any(span.name == "process tests.charge_card" for span in default.records())
    with tracing_settings(RECORD_TASK_ARGS=[r"^tests\.charge_card$"]) as enabled:
        charge_card.apply(args=["4111"], kwargs={"cvv": "123"})
    consumer = next(span for span in enabled.records() if span.kind == "CONSUMER")
    assert consumer.attributes["celery.task.args"] == "('4111',)"
    assert consumer.attributes["celery.task.kwargs"] == "{'cvv': '123'}"


def test_span_names_have_bounded_cardinality(client):
    with tracing_settings() as spans:
        client.generic("FROBNICATE", "/api/whoami/")
        client.get("/reports/123456789/")
    names = spans.names()
    assert "HTTP api/whoami/" in names and "GET reports/<int:pk>/" in names
    assert not [name for name in names if "123456789" in name or "FROBNICATE" in name]


def test_exception_messages_are_not_recorded_unless_enabled(client):
    with tracing_settings() as default:
        with pytest.raises(RuntimeError):
            client.get("/boom/?email=SECRET-MAIL")
    server = server_span(default)
    assert server.error and server.status_message == "RuntimeError"
    event = dict(server.events)["exception"]
    assert event["exception.type"] == "RuntimeError" and "business_urls.py" in event["exception.stacktrace"]
    assert b"SECRET-MAIL" not in default.otlp_bytes()
    with tracing_settings(RECORD_EXCEPTION_MESSAGES=True) as enabled:
        with pytest.raises(RuntimeError):
            client.get("/boom/?email=SECRET-MAIL")
    assert server_span(enabled).status_message == "RuntimeError: boom SECRET-MAIL"


@pytest.mark.django_db
def test_database_error_messages_never_quote_values_by_default():
    from django.db import DatabaseError

    with tracing_settings() as spans:
        with pytest.raises(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT CAST(%s AS integer)", ["SECRET-NOT-A-NUMBER"])
    exported = spans.otlp_bytes()
    assert b"SECRET-NOT-A-NUMBER" not in exported
    assert next(s for s in spans.records() if s.kind == "CLIENT").error
