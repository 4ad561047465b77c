"""The README's "Quick start in your project", run as a new user would: the wheel built
from this repository, installed into a fresh virtualenv (with the `celery` extra, and
with no extra), `django-admin startproject mysite`, the README's blocks applied as
written (read from README.md, so the README cannot drift from what works), then
`check`, `migrate`, gunicorn and a Celery worker on PostgreSQL and RabbitMQ, one
request, and one connected trace at a real OTLP receiver.

The test adds only what every project has anyway, the way a user would: its database
settings, a queue name of its own, and a view (``shop/views.py``) that publishes a
task (``shop/tasks.py``)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.test_packaging import constraints
from tracing_app.testing import Expect, assert_trace

from .stack import (
    BROKER_URL,
    DEADLINE,
    ROOT,
    Database,
    Process,
    RabbitBroker,
    StackReceiver,
    free_port,
    make_database,
    require_real_services,
    run_id,
)

SECTION = "## Quick start in your project"
# A block's first line names its file: "# mysite/settings.py: add at the end, with Celery".
HEADER = re.compile(r"^# (?P<path>[\w./]+): (?P<how>add at the end|new file)(?P<rest>.*)$")


@dataclasses.dataclass(frozen=True)
class Block:
    path: str
    how: str  # "add at the end" or "new file"
    with_celery: bool  # only for a project that uses Celery
    code: str


def quickstart_blocks(readme: str) -> tuple[list[str], list[Block]]:
    """The section's ``bash`` commands and its ``python`` blocks, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start:end if end != -1 else None]
    commands, blocks = [], []
    for language, code in re.findall(r"^```(\w+)\n(.*?)^```", section, re.S | re.M):
        if language == "bash":
            commands += [line.split("#")[0].strip() for line in code.splitlines() if line.split("#")[0].strip()]
            continue
        assert language == "python", f"a {language} block in the quick start cannot be applied"
        first = code.splitlines()[0]
        header = HEADER.match(first)
        assert header, f"a quick start block must name its file on its first line ({HEADER.pattern}): {first!r}"
        blocks.append(Block(header["path"], header["how"], "with Celery" in header["rest"], code))
    return commands, blocks


def readme_quickstart() -> tuple[list[str], list[Block]]:
    return quickstart_blocks((ROOT / "README.md").read_text())


def test_the_quick_start_names_each_blocks_file_and_installs_the_celery_extra():
    commands, blocks = readme_quickstart()
    assert commands == ['pip install ".[celery]"']
    files = {(b.path, b.with_celery) for b in blocks}
    assert {("mysite/settings.py", False), ("gunicorn.conf.py", False), ("mysite/celery.py", True)} <= files


def test_a_block_without_its_file_is_refused():
    readme = f"{SECTION}\n\n```python\nINSTALLED_APPS += ['tracing_app']\n```\n\n## Next\n"
    with pytest.raises(AssertionError, match="must name its file"):
        quickstart_blocks(readme)


# -- the user's project ---------------------------------------------------------------

SHOP_TASKS = '''
from celery import shared_task


@shared_task
def confirm_order(order_id):
    return order_id
'''

SHOP_VIEWS_CELERY = '''
from django.http import HttpResponse

from shop.tasks import confirm_order


def order(request):
    confirm_order.delay(7)
    return HttpResponse("queued")
'''

SHOP_VIEWS = '''
from django.contrib.auth.models import User
from django.http import HttpResponse


def order(request):
    return HttpResponse(str(User.objects.count()))
'''

SHOP_URLS = '''
from django.urls import path

from shop import views

urlpatterns += [path("order/", views.order)]
'''


def project_settings(database: Database, queue: str) -> str:
    url = urllib.parse.urlsplit(database.url)
    return f'''
# The project's own database and queue (not part of the quick start).
INSTALLED_APPS += ["shop"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": {database.name!r},
                         "HOST": {url.hostname!r}, "PORT": {url.port or 5432}, "USER": {url.username!r},
                         "PASSWORD": {url.password or ""!r}}}}}
CELERY_TASK_DEFAULT_QUEUE = {queue!r}
'''


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout (built from a copy: setuptools writes next to the sources)."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "tracing_app", source / "tracing_app", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps",
                    "--no-build-isolation", "-w", folder / "dist", source],
                   check=True, capture_output=True, timeout=DEADLINE * 3)
    [built] = (folder / "dist").glob("django_tracing_app-*.whl")
    return built


class UserProject:
    """A virtualenv with the wheel, and a fresh ``mysite`` project in a folder of its own."""

    def __init__(self, folder: Path, wheel: Path, extras: str, env: dict[str, str]) -> None:
        self.folder = folder
        self.venv = folder / "venv"
        self.dir = folder / "mysite"
        self.env = env
        self.processes: list[Process] = []
        self.run([sys.executable, "-m", "venv", self.venv], cwd=folder)
        # The repository's pins, so that pip resolves exact versions (and its cache serves them);
        # .ci/versions.sh passes the pins of the version set it tests.
        pins = os.environ.get("TRACING_CONSTRAINTS") or constraints(folder)
        self.run([self.bin("python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                  "-c", pins, f"{wheel}{extras}", "gunicorn", "psycopg[binary]"],
                 cwd=folder, timeout=DEADLINE * 5)
        self.dir.mkdir()
        self.run([self.bin("django-admin"), "startproject", "mysite", self.dir], cwd=folder)
        self.manage("startapp", "shop")

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def run(self, argv: list, cwd: Path | None = None, timeout: float = DEADLINE) -> str:
        result = subprocess.run([str(a) for a in argv], cwd=cwd or self.dir, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    def manage(self, *args: str) -> str:
        return self.run([self.bin("python"), "manage.py", *args])

    def apply(self, blocks: list[Block], with_celery: bool) -> None:
        for block in blocks:
            if block.with_celery and not with_celery:
                continue
            path = self.dir / block.path
            if block.how == "new file":
                assert not path.exists(), f"the README creates {block.path}, which startproject already made"
                path.write_text(block.code)
            else:
                path.write_text(path.read_text() + "\n" + block.code)

    def write(self, relative: str, text: str, append: bool = False) -> None:
        path = self.dir / relative
        path.write_text((path.read_text() if append else "") + text)

    def start(self, name: str, *argv: object) -> Process:
        process = Process(name, [str(a) for a in argv], self.env, cwd=self.dir)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.output()[-6000:]}" for p in self.processes)


def user_env(folder: Path, otlp: StackReceiver) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"], "HOME": str(folder), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
        # The README's OTLP_ENDPOINT is a local collector; the standard variable wins over TRACING.
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "CELERY_BROKER_URL": BROKER_URL,
    }


def get(url: str, process: Process) -> int:
    """GET ``url`` once gunicorn listens; its status."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert process.popen.poll() is None, f"gunicorn exited:\n{process.output()}"
        try:
            with urllib.request.urlopen(url, timeout=DEADLINE) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"gunicorn did not answer in {DEADLINE}s:\n{process.output()}")


def run_quickstart(tmp_path: Path, wheel: Path, otlp: StackReceiver, request, with_celery: bool) -> None:
    chosen = require_real_services("the quick start on PostgreSQL and RabbitMQ")
    commands, blocks = readme_quickstart()
    extras = re.search(r'"\.(\[[\w,]+\])?"', commands[0])[1] or ""
    if not with_celery:
        extras = ""
    database = make_database(chosen)
    queue = f"quickstart-{run_id()}"
    project: UserProject | None = None
    try:
        project = UserProject(tmp_path, wheel, extras, user_env(tmp_path, otlp))
        otlp.stacks.append(project)
        project.apply(blocks, with_celery)
        project.write("mysite/settings.py", project_settings(database, queue), append=True)
        project.write("mysite/urls.py", SHOP_URLS, append=True)
        if with_celery:
            project.write("shop/tasks.py", SHOP_TASKS)
        project.write("shop/views.py", SHOP_VIEWS_CELERY if with_celery else SHOP_VIEWS)

        checked = project.manage("check")
        assert "System check identified no issues" in checked, checked
        migrated = project.manage("migrate", "--noinput")
        assert "Applying tracing_app.0001_initial... OK" in migrated, migrated

        port = free_port()
        web = project.start("gunicorn", project.bin("gunicorn"), "-c", "gunicorn.conf.py", "mysite.wsgi",
                            "-b", f"127.0.0.1:{port}", "-w", "1")
        if with_celery:
            # A node name of its own: two workers of one name on a broker clash (the pidbox queue).
            worker = project.start("celery", project.bin("celery"), "-A", "mysite", "worker", "-c", "1", "-l", "info",
                                   "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat")
            worker.wait_output("ready.")
        assert get(f"http://127.0.0.1:{port}/order/", web) == 200

        if with_celery:
            expected = Expect("GET order/", kind="SERVER", children=[
                Expect("send shop.tasks.confirm_order", kind="PRODUCER", children=[
                    Expect("process shop.tasks.confirm_order", kind="CONSUMER", error=False),
                ]),
            ])
            spans = otlp.wait_for(lambda spans: any(s.kind == "CONSUMER" for s in spans))
        else:
            expected = Expect("GET order/", kind="SERVER", children=[
                Expect("SELECT auth_user", kind="CLIENT"),
            ])
            spans = otlp.wait_for(lambda spans: any(s.kind == "SERVER" for s in spans))
        [trace_id] = {s.trace_id for s in spans if s.kind == "SERVER"}
        trace = [s for s in spans if s.trace_id == trace_id]
        assert_trace(trace, expected)
        # Every process reports the SERVICE_NAME the README set (a role may be added to it).
        assert all(s.service.startswith("mysite") for s in trace), {s.service for s in trace}
    finally:
        if project is not None:
            project.stop()
            report = getattr(request.node, "report_call", None)
            if report is None or report.failed:
                print(project.logs())
        RabbitBroker().cleanup(queue)
        database.drop()


def test_the_quick_start_with_the_celery_extra_gives_one_trace_across_gunicorn_and_a_celery_worker(
        tmp_path, wheel, otlp, request):
    run_quickstart(tmp_path, wheel, otlp, request, with_celery=True)


def test_the_quick_start_with_no_extra_traces_requests_and_queries(tmp_path, wheel, otlp, request):
    run_quickstart(tmp_path, wheel, otlp, request, with_celery=False)
