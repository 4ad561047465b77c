"""kombu's filesystem transport, with each message file appearing whole, for the embedded demo.

kombu's reader moves a message file away as soon as it lists it, while the writer may
not have written its bytes yet (the writer takes a lock the reader never asks for): the
worker then reads an empty file and stops with a JSONDecodeError (kombu issue #1551,
open). Writing under a name the reader skips and renaming it into place, an atomic step
on one file system, closes that window. Everything else is kombu's.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict, **kwargs: object) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")  # not "*.{queue}.msg": never read
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def use_for_filesystem_urls() -> None:
    """``filesystem://`` means this transport in this process (kombu resolves URLs by alias)."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
