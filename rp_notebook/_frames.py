"""Length-prefixed pickles: how a process of rp_notebook talks to a child it started from
`sys.executable` over that child's stdin and stdout (the HTTP helper, `client._exchange`; the local
endpoint's process, `local._process`).

Each frame is a 4-byte big-endian length, then a pickle. Unpickling is as safe as importing
rp_notebook, since both ends are rp_notebook itself on a private pipe; nothing else may write one.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import struct
import sys
from typing import IO, Any

__all__ = ["child_stdio", "encode", "read", "read_async"]

_LENGTH = struct.Struct("!I")


def encode(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


def read(stream: IO[bytes]) -> Any:
    """The next frame; EOFError when the other side has closed the pipe."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError("the other side closed the pipe")
    (size,) = _LENGTH.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("the other side closed the pipe")
    return pickle.loads(payload)  # noqa: S301 - our own process pair (see above)


async def read_async(reader: asyncio.StreamReader) -> Any:
    """The next frame; asyncio.IncompleteReadError when the other side has closed the pipe."""
    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return pickle.loads(await reader.readexactly(size))  # noqa: S301 - our own process pair


def child_stdio() -> IO[bytes]:
    """In the child: where its frames go (the original stdout, unbuffered). From here on anything
    else printed (a library's warning) goes to stderr, and Ctrl-C in a terminal or a kernel's
    interrupt, meant for the user's code, is ignored: the child ends when its stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    frames_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return frames_out
