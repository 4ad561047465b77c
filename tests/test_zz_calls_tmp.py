import sys, collections
from django.core.cache import caches
from django.test import override_settings
from tracing_app.pipeline.provider import get_tracer
from tests.tracing_settings import tracing_settings

def test_calls():
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "calls"}}):
        with tracing_settings(**({"INTEGRATIONS": {"cache": False}} if __import__("os").environ.get("OFF") else {})) as spans:
            c = caches["default"]
            c.set("k", 1)
            with get_tracer().start_as_current_span("root"):
                c.get_or_set("k", 2)
                counts = collections.Counter(); order=[]
                def prof(frame, event, arg):
                    if event in ("call", "c_call"):
                        name = (frame.f_code.co_filename.split("site-packages/")[-1].split("/work/main/")[-1] + ":" + frame.f_code.co_name) if event == "call" else ("C:" + getattr(arg, "__qualname__", str(arg)))
                        counts[name] += 1
                sys.setprofile(prof)
                c.get_or_set("k", 2)
                sys.setprofile(None)
    print("TOTAL", sum(counts.values()))
    for k, v in counts.most_common(60): print(v, k)
