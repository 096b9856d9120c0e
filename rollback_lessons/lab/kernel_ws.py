"""The kernel's websocket without Nagle's algorithm: a click's answer reaches the page
without waiting for the browser's delayed ACK.

jupyter_server does not set TCP_NODELAY on its kernel websockets (Tornado leaves Nagle's
algorithm on unless a handler asks for it). Every widget change makes the kernel send a
burst of small messages (status "busy", the echo of the change, the update, "idle"): the
first goes out at once, the next waits in the server's socket until the browser
acknowledges the first, which it delays by about 40 ms. Measured with timestamps in the
kernel, the server and the page: the message after "busy" reached the page 45-48 ms after
the server wrote it, on most clicks; with TCP_NODELAY, 1-3 ms.

``launch.SERVER_FLAGS`` starts JupyterLab with this class, for ``rollback-lessons lab``,
``make lab``, the browser tests and ``benchmarks/browser.py`` alike.
"""

from __future__ import annotations

import asyncio

from jupyter_server.services.kernels.connection.channels import (
    ZMQChannelsWebsocketConnection,
)


class NoDelayConnection(ZMQChannelsWebsocketConnection):
    """jupyter_server's own kernel connection, with TCP_NODELAY on its websocket."""

    # typed as its parent's own connect (the base class says a coroutine; it is not one)
    def connect(self) -> asyncio.Future[None] | None:  # type: ignore[override]
        self.websocket_handler.set_nodelay(True)  # once open, before any message
        return super().connect()
