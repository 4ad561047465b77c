"""The embedded demo's filesystem broker: a message file is never read before it is whole."""

import os
from queue import Empty

import pytest
from kombu import Connection
from kombu.transport import TRANSPORT_ALIASES

from project import broker


@pytest.fixture
def channel(tmp_path, monkeypatch):
    monkeypatch.setitem(TRANSPORT_ALIASES, "filesystem", TRANSPORT_ALIASES["filesystem"])
    broker.use_for_filesystem_urls()
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path), "control_folder": str(tmp_path)}
    with Connection("filesystem://", transport_options=options) as connection:
        assert isinstance(connection.transport, broker.Transport)
        yield connection.default_channel


@pytest.mark.parametrize("queue", ["shop", "e2e-1234"])
def test_a_message_being_written_is_invisible_to_the_reader(channel, monkeypatch, queue):
    seen_while_writing = []
    replace = os.replace

    def replace_after_a_read(source, target):
        try:
            seen_while_writing.append(channel._get(queue))  # the worker polls mid-write
        except Empty:
            seen_while_writing.append("Empty")
        replace(source, target)

    monkeypatch.setattr(broker.os, "replace", replace_after_a_read)
    channel._put(queue, {"body": "order 1"})
    assert seen_while_writing == ["Empty"]
    assert channel._get(queue) == {"body": "order 1"}
