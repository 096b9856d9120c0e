"""A real SMTP server on 127.0.0.1 with an in-memory mailbox, for lesson 06 and its tests."""

from __future__ import annotations

import atexit
from email import message_from_bytes
from email.message import Message
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from ..runners import free_port


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


class MailServer:
    """``with MailServer() as server:`` ... ``server.port``, ``server.messages``."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = free_port()
        self._mailbox = _Mailbox()
        self._controller = Controller(self._mailbox, hostname=self.host, port=self.port)
        self.running = False

    def start(self) -> MailServer:
        """Serve on 127.0.0.1 until ``stop()``, or until this process (a notebook's kernel)
        ends: a lesson's panel can keep sending mail after its cells have run."""
        self._controller.start()
        self.running = True
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        if self.running:
            self._controller.stop()
            self.running = False
            atexit.unregister(self.stop)

    @property
    def messages(self) -> list[Message]:
        return self._mailbox.messages

    def inbox(self) -> str:
        """The mailbox, one line per message: who it went to and its subject."""
        lines = [f"{i}. to {m['To']}: {m['Subject']}" for i, m in enumerate(self.messages, 1)]
        return "\n".join(lines) or "(empty)"

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
