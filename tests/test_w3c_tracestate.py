"""tracestate per W3C Trace Context Level 2: what a service passes on for what it received.

Each case of the W3C's own test suite (the w3c/trace-context repository's ``test/``,
run with SPEC_LEVEL=2) is restated here in our words, plus more inputs of the same
kinds; the grammar itself is checked with hypothesis against a reference written
straight from the ABNF.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace.span import TraceState

from tests.e2e.stack import Recorder
from tracing_app.context import w3c
from tracing_app.context.propagators import TraceContextPropagator
from tracing_app.context.w3c import W3CTraceState, parse_tracestate
from tracing_app.pipeline.provider import get_tracer

TRACE = "12345678901234567890123456789012"
INCOMING = f"00-{TRACE}-1234567890123456-01"
LCALPHA = "abcdefghijklmnopqrstuvwxyz"
KEY_CHARS = LCALPHA + "0123456789_-*/@"
# Every character a value may hold: printable ASCII but "," and "="; a value does not end with a space.
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")


def passed_on(*lines: str, traceparent: str | None = INCOMING) -> tuple[str, list[tuple[str, str]]]:
    """(outgoing trace id, outgoing tracestate members) of a service that received
    ``traceparent`` and the ``tracestate`` header ``lines`` and made one call."""
    carrier: dict[str, object] = {"tracestate": list(lines)}
    if traceparent is not None:
        carrier["traceparent"] = traceparent
    with get_tracer().start_as_current_span("handle", context=propagate.extract(carrier, Context())):
        outgoing: dict[str, str] = {}
        propagate.inject(outgoing)
    return outgoing["traceparent"].split("-")[1], members(outgoing.get("tracestate", ""))


def members(header: str) -> list[tuple[str, str]]:
    """The members of a header we wrote (no OWS, no empty members)."""
    return [tuple(member.split("=", 1)) for member in header.split(",")] if header else []


# -- the harness's cases -----------------------------------------------------------------


def test_no_headers_and_tracestate_without_traceparent():
    trace_id, state = passed_on(traceparent=None)
    assert trace_id != TRACE and state == []
    for header in ("foo=1", "foo=1,bar=2"):
        trace_id, state = passed_on(header, traceparent=None)
        assert trace_id != TRACE and state == [], "a tracestate without traceparent is discarded"


def test_tracestate_is_passed_on_with_the_traceparent():
    assert passed_on("foo=1,bar=2") == (TRACE, [("foo", "1"), ("bar", "2")])


@pytest.mark.parametrize("lines", [
    ("",), (" ",), (" \t , ",),
])
def test_empty_header_keeps_the_trace_and_passes_nothing(lines):
    assert passed_on(*lines) == (TRACE, [])


@pytest.mark.parametrize("lines", [
    ("foo=1", ""), ("", "foo=1"), ("", "foo=1", ""), (",foo=1,",), (" , foo=1 ,\t",),
])
def test_empty_lines_and_members_are_skipped(lines):
    assert passed_on(*lines) == (TRACE, [("foo", "1")])


def test_several_lines_are_combined_in_order():
    assert passed_on("foo=1,bar=2", "rojo=1,congo=2", "baz=3") == (
        TRACE, [("foo", "1"), ("bar", "2"), ("rojo", "1"), ("congo", "2"), ("baz", "3")])


@pytest.mark.parametrize(("lines", "kept"), [
    (("foo=1,foo=1",), [("foo", "1")]),
    (("foo=1,foo=2",), [("foo", "1")]),
    (("foo=1", "foo=1"), [("foo", "1")]),
    (("foo=1", "foo=2"), [("foo", "1")]),
    # more of the kind: the left-most value wins wherever the duplicate is
    (("foo=1,bar=2,foo=3",), [("foo", "1"), ("bar", "2")]),
    (("bar=2", "foo=1", "baz=3,foo=2", "foo=4"), [("bar", "2"), ("foo", "1"), ("baz", "3")]),
    (("a@b=1,a@b= 2",), [("a@b", "1")]),
])
def test_duplicated_keys_keep_the_trace_and_pass_on_one_value(lines, kept):
    assert passed_on(*lines) == (TRACE, kept)


@pytest.mark.parametrize("key", [LCALPHA + "0123456789_-*/", LCALPHA + "0123456789_-*/@a-z0-9_-*/"])
def test_every_allowed_character(key):
    assert passed_on(f"{key}={VALUE_CHARS}") == (TRACE, [(key, VALUE_CHARS)])


@pytest.mark.parametrize("header", [
    "foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3", "foo=1,bar=2,baz=3 ",
])
def test_optional_whitespace_between_members(header):
    assert passed_on(header) == (TRACE, [("foo", "1"), ("bar", "2"), ("baz", "3")])


@pytest.mark.parametrize("header", [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"])
def test_optional_whitespace_around_one_member(header):
    assert passed_on(header) == (TRACE, [("foo", "1")])


def test_leading_spaces_belong_to_the_value():
    assert passed_on("foo=  1 ,bar= x y") == (TRACE, [("foo", "  1"), ("bar", " x y")])


@pytest.mark.parametrize("header", [
    "foo =1", "FOO=1", "foo.bar=1", "fOo=1", "foo\t=1", "foo=1,bar:x=2", "_foo=1", "*foo=1", "foo bar=1",
])
def test_a_key_with_an_illegal_character_discards_the_header(header):
    assert passed_on(header, "other=2") == (TRACE, [])


@pytest.mark.parametrize(("header", "key"), [
    ("foo@=1,bar=2", "foo@"),
    ("foo@@bar=1,bar=2", "foo@@bar"),
    ("foo@bar@baz=1,bar=2", "foo@bar@baz"),
    # more of the kind: Level 2 drops Level 1's tenant@vendor shape
    ("1@2=1,bar=2", "1@2"),
    ("tenant@9vendor=1,bar=2", "tenant@9vendor"),
    ("a@b/c*d-e_f=1,bar=2", "a@b/c*d-e_f"),
])
def test_keys_with_at_signs_are_kept(header, key):
    assert passed_on(header) == (TRACE, [(key, "1"), ("bar", "2")])


@pytest.mark.parametrize("header", ["@foo=1,bar=2", "bar=2,@=1", "bar=2, @foo@=1"])
def test_a_key_starting_with_an_at_sign_discards_the_header(header):
    assert passed_on(header) == (TRACE, [])


def test_member_count_limit():
    thirty = [",".join(f"bar{i:02}={i:02}" for i in range(start, start + 10)) for start in (1, 11, 21)]
    thirty_two = [*thirty, "bar31=31,bar32=32"]
    assert len(passed_on(*thirty_two)[1]) == 32
    assert passed_on(*thirty, "bar31=31,bar32=32,bar33=33") == (TRACE, [])
    # a duplicate is a member too; an empty member is not
    assert passed_on(*thirty_two, "bar01=1") == (TRACE, [])
    assert len(passed_on(*thirty_two, "", " , ,")[1]) == 32


@pytest.mark.parametrize("key", [
    "z" * 256, "t" * 241 + "@" + "v" * 14, "t" * 242 + "@v", "t@" + "v" * 15,
    # more of the kind: 256 characters whatever they are
    "0" * 256, "a" + "@" * 255, "a/" * 128,
])
def test_a_key_of_256_characters_is_kept(key):
    assert passed_on("foo=1", f"{key}=1") == (TRACE, [("foo", "1"), (key, "1")])


@pytest.mark.parametrize("key", ["z" * 257, "t" * 242 + "@" + "v" * 14, "a" + "@" * 256])
def test_a_key_of_257_characters_discards_the_header(key):
    assert passed_on("foo=1", f"{key}=1") == (TRACE, [])


@pytest.mark.parametrize("header", [
    "foo=bar=baz", "foo=,bar=3", "foo=" + "v" * 257, "foo=a\tb", "foo=\u00e9", "foo", "=1", "foo=1,=2",
    "foo=\x7f",
])
def test_an_illegal_value_discards_the_header(header):
    assert passed_on(header) == (TRACE, [])


def test_a_value_of_256_characters_is_kept():
    assert passed_on("foo=" + " " * 255 + "v") == (TRACE, [("foo", " " * 255 + "v")])


def test_over_512_characters_whole_entries_are_dropped_long_ones_first():
    long_entries = [(f"long{i}", "x" * 150) for i in range(2)]
    short_entries = [(f"k{i:02}", "v" * 20) for i in range(20)]
    header = ",".join(f"{k}={v}" for k, v in [long_entries[0], *short_entries, long_entries[1]])
    trace_id, state = passed_on(header)
    assert trace_id == TRACE
    assert state == short_entries[:len(state)], "long ones dropped first, then from the right"
    written = ",".join(f"{k}={v}" for k, v in state)
    assert len(written) <= w3c.TRACESTATE_PROPAGATE_MAX < len(written) + 1 + 24, "no more dropped than needed"


def test_a_header_over_the_read_bound_is_discarded():
    many_spaces = "foo=1" + " " * w3c.TRACESTATE_READ_MAX
    assert passed_on(many_spaces) == (TRACE, [])


@pytest.mark.urls("tests.urls")
def test_the_service_passes_on_what_it_received(client, recorder):
    """The whole path of the harness: our middleware reads the request, the view calls out with requests."""
    cases = {
        "foo=1,foo=2": "foo=1",
        "foo@=1,bar=2": "foo@=1,bar=2",
        "@foo=1,bar=2": None,
        "foo@@bar=1,bar=2": "foo@@bar=1,bar=2",
        f"foo=1,{'z' * 256}=1": f"foo=1,{'z' * 256}=1",
        f"foo=1,{'z' * 257}=1": None,
        f"foo=1,{'t' * 241}@{'v' * 14}=1": f"foo=1,{'t' * 241}@{'v' * 14}=1",
        "foo=1 \t , \t bar=2": "foo=1,bar=2",
    }
    for sent in cases:
        response = client.post("/call-out/", json.dumps([recorder.url]), content_type="application/json",
                               HTTP_TRACEPARENT=INCOMING, HTTP_TRACESTATE=sent)
        assert response.status_code == 204
    for (sent, expected), headers in zip(cases.items(), recorder.headers, strict=True):
        assert headers["traceparent"].split("-")[1] == TRACE, sent
        assert headers.get("tracestate") == expected, sent


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    service = Recorder()
    yield service
    service.stop()


# -- the state object ------------------------------------------------------------------------


def test_state_is_an_sdk_trace_state_that_keeps_level_2_keys(caplog):
    with caplog.at_level(logging.DEBUG):
        state = parse_tracestate("foo@=secret-1,a@b@c=secret-2")
        assert isinstance(state, TraceState)
        assert list(state.items()) == [("foo@", "secret-1"), ("a@b@c", "secret-2")]
        updated = state.update("vendor", "x").add("foo@", "ignored").delete("a@b@c")
        assert updated.to_header() == "vendor=x,foo@=secret-1"
        assert state.update("foo@", "y").to_header() == "foo@=y,a@b@c=secret-2"
        assert state.add("Bad", "x") is state and state.update("k", "a=b") is state
        context = trace.SpanContext(1, 2, is_remote=True, trace_state=updated)
        assert context.trace_state.to_header() == "vendor=x,foo@=secret-1"
    assert "secret" not in caplog.text, "values are never logged"


def test_state_keeps_to_32_entries_and_from_header_reads_level_2():
    full = W3CTraceState([(f"k{i}", "v") for i in range(40)])
    assert len(full) == 32
    assert full.add("new", "v") is full and len(full.update("k0", "w")) == 32
    assert W3CTraceState.from_header(["foo@=1", "bar=2"]).to_header() == "foo@=1,bar=2"
    assert W3CTraceState.from_header(["@foo=1"]) == W3CTraceState()
    assert W3CTraceState([("foo@", "1"), ("foo@", "2"), ("BAD", "3")]).to_header() == "foo@=1"


def test_extract_makes_a_level_2_state():
    context = TraceContextPropagator().extract({"traceparent": INCOMING, "tracestate": "foo@=1"})
    assert isinstance(trace.get_current_span(context).get_span_context().trace_state, W3CTraceState)


# -- the grammar, property-tested ------------------------------------------------------------------

# The ABNF of Level 2, written out whole as the reference the parser is checked against:
# list = list-member 0*31( OWS "," OWS list-member ); list-member = ( key "=" value ) / OWS.
# We read empty members as the spec's prose says (skipped; see parse_tracestate), so the
# reference counts only key=value members against the 32.
_KEY = r"[a-z0-9][a-z0-9_\-*/@]{0,255}"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_REFERENCE_MEMBER = re.compile(rf"[ \t]*(?:({_KEY})=({_VALUE}))?[ \t]*")


def reference(header: str) -> list[tuple[str, str]] | None:
    """The key=value members of ``header``, or None when the grammar refuses it."""
    found = []
    position = 0
    while True:
        match = _REFERENCE_MEMBER.match(header, position)
        if match is None:
            return None
        if match.group(1) is not None:
            found.append((match.group(1), match.group(2)))
        position = match.end()
        if position == len(header):
            break
        if header[position] != ",":
            return None
        position += 1
    return found if len(found) <= 32 else None


keys = st.builds(lambda first, rest: first + rest, st.sampled_from(LCALPHA + "0123456789"),
                 st.text(KEY_CHARS, max_size=255))
values = st.builds(lambda rest, last: rest + last, st.text(VALUE_CHARS, max_size=255),
                   st.sampled_from(VALUE_CHARS.replace(" ", "")))
ows = st.text(" \t", max_size=3)
pair_lists = st.lists(st.tuples(keys, values), max_size=32)


@st.composite
def headers(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    """(header lines, the members in them): a list valid by the grammar, with OWS, empty
    members and duplicate keys, split into lines at arbitrary commas."""
    pairs = draw(pair_lists)
    if pairs and draw(st.booleans()):
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(st.sampled_from(pairs))[0], draw(values)))
        pairs = pairs[:32]
    pieces = [draw(ows) + f"{k}={v}" + draw(ows) for k, v in pairs]
    for _ in range(draw(st.integers(0, 3))):
        pieces.insert(draw(st.integers(0, len(pieces))), draw(ows))
    lines, line = [], []
    for piece in pieces:
        line.append(piece)
        if draw(st.booleans()):
            lines.append(",".join(line))
            line = []
    lines.append(",".join(line))
    return lines, pairs


def first_of_each_key(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    kept: dict[str, str] = {}
    for key, value in pairs:
        kept.setdefault(key, value)
    return list(kept.items())


def written_length(pairs: list[tuple[str, str]]) -> int:
    return len(",".join(f"{k}={v}" for k, v in pairs))


@settings(max_examples=300, deadline=None)
@given(headers())
def test_every_list_the_grammar_allows_is_read(drawn):
    lines, pairs = drawn
    combined = ",".join(lines)
    assert reference(combined) == pairs, "the generator follows the grammar"
    state = parse_tracestate(combined)
    if len(combined) > w3c.TRACESTATE_READ_MAX:
        assert state is None
        return
    assert state is not None
    expected = first_of_each_key(pairs)
    kept = list(state.items())
    if written_length(expected) <= w3c.TRACESTATE_PROPAGATE_MAX:
        assert kept == expected
        return
    # Truncated: whole entries, those over 128 characters first, each kind from the right,
    # no more than needed.
    assert written_length(kept) <= w3c.TRACESTATE_PROPAGATE_MAX
    assert [p for p in expected if p in kept] == kept
    long_ = [p for p in expected if len(p[0]) + 1 + len(p[1]) > w3c.TRACESTATE_LONG_ENTRY]
    short = [p for p in expected if p not in long_]
    for kind in (long_, short):
        kept_of_kind = [p for p in kind if p in kept]
        assert kept_of_kind == kind[:len(kept_of_kind)]
    dropped_short = [p for p in short if p not in kept]
    if dropped_short:
        assert not any(p in kept for p in long_)
    last_dropped = dropped_short[0] if dropped_short else next(p for p in long_ if p not in kept)
    assert written_length(kept) + 1 + len(last_dropped[0]) + 1 + len(last_dropped[1]) > w3c.TRACESTATE_PROPAGATE_MAX


@settings(max_examples=300, deadline=None)
@given(headers(), st.sampled_from([
    "@k=1", "K=1", "k =1", "k.x=1", "_k=1", "k=", "k=a,b=", "k=a=b", "k=\t", "k=\x00", "k=\u00e9", "=v", "k",
    "k=" + "v" * 257, "k" * 257 + "=v", "k=1\n",
]), st.integers(0, 40))
def test_one_member_outside_the_grammar_discards_the_header(drawn, bad, where):
    lines, _ = drawn
    members_in = ",".join(lines).split(",")
    members_in.insert(where % (len(members_in) + 1), bad)
    combined = ",".join(members_in)
    assert reference(combined) is None
    assert parse_tracestate(combined) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(keys, values), min_size=33, max_size=40), ows)
def test_more_than_32_members_discard_the_header(pairs, space):
    combined = (space + "," + space).join(f"{k}={v}" for k, v in pairs)
    assert reference(combined) is None
    assert parse_tracestate(combined) is None


@settings(max_examples=1000, deadline=None)
@given(st.text("az09@_-*/=, \t.A\x7f", max_size=60))
def test_parser_agrees_with_the_reference_on_any_text(text):
    state = parse_tracestate(text)
    expected = reference(text)
    assert (None if state is None else list(state.items())) == \
        (None if expected is None else first_of_each_key(expected))
