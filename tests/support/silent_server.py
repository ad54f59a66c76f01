"""A server that accepts connections and never answers: the kernel's backlog takes them and nothing reads. This is
how a hung Hub or model server looks to a client, and every network call of a command must give up on it."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def never_answering() -> Iterator[str]:
    """The http:// address of a socket that accepts connections and never reads or answers them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
