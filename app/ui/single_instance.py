"""One Downshift per user and config file: a second launch hands over to the running one and exits.

The running instance listens on a local socket (a Unix socket or a Windows named pipe) whose name is
derived from the user and the config path, so two configs can run side by side but the same one never
starts a second proxy on the same port.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)


def instance_key(config_path: Path) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    digest = hashlib.sha256(f"{user}\0{config_path.expanduser().resolve()}".encode()).hexdigest()[:16]
    return f"downshift-{digest}"


class SingleInstance(QObject):
    """`hand_over()` from a second launch; `listen()` in the first; `messageReceived` fires there."""

    messageReceived = Signal(str)

    def __init__(self, key: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self._server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytes] = {}

    def hand_over(self, message: str = "show", timeout_ms: int = 1000) -> bool:
        """True when another instance is listening and got `message`; then this one should exit."""
        socket = QLocalSocket(self)
        try:
            socket.connectToServer(self.key)
            if not socket.waitForConnected(timeout_ms):
                return False
            socket.write(message.encode() + b"\n")
            socket.flush()
            delivered = socket.waitForBytesWritten(timeout_ms) or socket.bytesToWrite() == 0
            socket.disconnectFromServer()
            return delivered
        finally:
            socket.abort()
            socket.deleteLater()

    def listen(self) -> bool:
        """Start answering later launches. A socket left by a crashed instance is removed first: nobody
        answered `hand_over`, so nobody is using it."""
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.key):
            QLocalServer.removeServer(self.key)
            if not server.listen(self.key):
                log.warning("single-instance socket %s unavailable: %s", self.key, server.errorString())
                server.deleteLater()
                return False
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.isListening()

    def _accept(self) -> None:
        assert self._server is not None
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            self._buffers[socket] = b""
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._closed(s))
            if socket.bytesAvailable():
                self._read(socket)

    def _read(self, socket: QLocalSocket) -> None:
        data = self._buffers.get(socket, b"") + bytes(socket.readAll().data())
        *lines, rest = data.split(b"\n")
        self._buffers[socket] = rest
        for line in lines:
            if line.strip():
                self.messageReceived.emit(line.decode(errors="replace").strip())

    def _closed(self, socket: QLocalSocket) -> None:
        if socket in self._buffers:
            self._read(socket)
            del self._buffers[socket]
            socket.deleteLater()

    def close(self) -> None:
        """Stop listening; sockets still open are cut off before the server goes, so no signal of theirs
        reaches this object after it is gone."""
        for socket in list(self._buffers):
            socket.readyRead.disconnect()
            socket.disconnected.disconnect()
            socket.abort()
            socket.deleteLater()
        self._buffers.clear()
        if self._server is not None:
            self._server.newConnection.disconnect()
            self._server.close()
            self._server.deleteLater()
            self._server = None
