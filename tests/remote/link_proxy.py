"""A TCP proxy that a test can sever: placed between paramiko and a real sshd, it cuts the
SSH link at chosen moments, the way a flaky network or a NAT timeout does.

    proxy = LinkProxy(sshd.port)            # listens on 127.0.0.1:proxy.port
    proxy.cut()                             # close every live connection now
    proxy.cut(logged_in=True)               # ... that is past its login request
    proxy.cut_on("server")                  # close the connection that next gets an answer
    proxy.cut_during_auth(times=1)          # close the next login(s), at the login request
    proxy.hold_logins = True                # swallow login requests: the server never answers

``cut_on("client")`` drops the next request before sshd sees it (the command never ran);
``cut_on("server")`` drops the next answer after sshd acted on the request (the command ran,
its output is lost): the case a runner must not silently repeat unless the command is
idempotent. Both look only at connections whose login request went by (a reconnect's
handshake is cut only by ``cut_during_auth``). ``cut_during_auth`` reads the client's plaintext handshake (banner, then binary
packets until NEWKEYS) and then lets through the first encrypted bytes, the short
SERVICE_REQUEST; the next client data, the USERAUTH_REQUEST that carries the public key and
its signature (well over ``AUTH_AFTER`` bytes), is dropped and the connection closed while
paramiko waits for the server's verdict.

Counters say what was really cut: ``cuts`` (connections severed), ``auth_cuts``; ``events``
lists what happened to each connection, for a failing test to print.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

MSG_NEWKEYS = 21
AUTH_AFTER = 100  # encrypted client bytes past NEWKEYS let through: SERVICE_REQUEST fits


class _Conn:
    def __init__(self, proxy: LinkProxy, client: socket.socket, server: socket.socket,
                 number: int) -> None:
        self.proxy, self.client, self.server, self.number = proxy, client, server, number
        self.closed = False
        self.watch_auth = True  # until this connection's login request went by
        self.answers = 0  # server reads forwarded after the login request
        self._plain = b""  # client bytes before NEWKEYS (the handshake is not encrypted)
        self._banner_done = False
        self._encrypted = -1  # client bytes after NEWKEYS; -1 until NEWKEYS was seen

    def close(self) -> bool:
        with self.proxy.lock:
            if self.closed:
                return False
            self.closed = True
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        return True

    def _auth_cut_due(self, data: bytes) -> bool:
        """Whether this client data is the login request (see the module docstring)."""
        if self._encrypted >= 0:
            self._encrypted += len(data)
            return self._encrypted > AUTH_AFTER
        self._plain += data
        if not self._banner_done:
            end = self._plain.find(b"\n")
            if end < 0:
                return False
            self._plain, self._banner_done = self._plain[end + 1:], True
        while len(self._plain) >= 6:
            length, kind = struct.unpack(">I", self._plain[:4])[0], self._plain[5]
            if len(self._plain) < 4 + length:
                return False
            self._plain = self._plain[4 + length:]
            if kind == MSG_NEWKEYS:
                self._encrypted = len(self._plain)  # what follows in this read is encrypted
                self._plain = b""
                return self._encrypted > AUTH_AFTER
        return False

    def pump(self, src: socket.socket, dst: socket.socket, side: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    self.proxy.note(self, f"{side} closed")
                    break
                if side == "client" and self.watch_auth and self._auth_cut_due(data):
                    if self.proxy.hold_logins:
                        self.proxy.note(self, "login request swallowed")
                        continue  # a link that went silent: no answer, no close
                    self.watch_auth = False
                    if self.proxy.take_auth_cut():
                        self.proxy.note(self, "cut at the login request")
                        break  # dropped: sshd never sees the login request
                if not self.watch_auth and self.proxy.take_cut(side):
                    self.proxy.note(self, f"cut on {side} data")
                    self.proxy.last_cut = max(self.proxy.last_cut, self.number)
                    break  # dropped: this side's data never arrives
                dst.sendall(data)
                if side == "server" and not self.watch_auth:
                    self.answers += 1
        except OSError as exc:
            if not self.closed:
                self.proxy.note(self, f"{side} side: {exc!r}")
        finally:
            self.close()


class LinkProxy:
    """127.0.0.1:``port`` -> 127.0.0.1:``target_port``, one thread pair per connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.lock = threading.Lock()
        self.conns: list[_Conn] = []
        self.cuts = 0  # connections severed on purpose
        self.auth_cuts = 0  # of those, cut while authenticating
        self.connections = 0
        self.last_cut = 0  # the highest connection number cut so far
        self.events: list[str] = []
        self._t0 = time.monotonic()
        self._pending: set[str] = set()  # "client" / "server": cut on the next data that way
        self._auth_armed = 0  # logins still to cut
        self.hold_logins = False  # swallow every login request (a link gone silent)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True, name="link-proxy").start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
                conn = _Conn(self, client, server, self.connections)
                self.conns = [c for c in self.conns if not c.closed] + [conn]
            self.note(conn, "opened")
            threading.Thread(target=conn.pump, args=(client, server, "client"),
                             daemon=True).start()
            threading.Thread(target=conn.pump, args=(server, client, "server"),
                             daemon=True).start()

    def note(self, conn: _Conn, what: str) -> None:
        self.events.append(f"{time.monotonic() - self._t0:6.2f} #{conn.number} {what}")

    def take_cut(self, side: str) -> bool:
        with self.lock:
            if side in self._pending:
                self._pending.discard(side)
                self.cuts += 1
                return True
        return False

    def take_auth_cut(self) -> bool:
        with self.lock:
            if self._auth_armed:
                self._auth_armed -= 1
                self.last_cut = self.connections
                self.auth_cuts += 1
                self.cuts += 1
                return True
        return False

    def live(self) -> int:
        with self.lock:
            return sum(not c.closed for c in self.conns)

    def cut(self, logged_in: bool = False) -> int:
        """Sever every live connection now (``logged_in``: only those past their login
        request, so a reconnect in its handshake is spared); -> how many."""
        with self.lock:
            conns = [c for c in self.conns
                     if not c.closed and not (logged_in and c.watch_auth)]
        for c in conns:
            self.note(c, "cut now")
            self.last_cut = max(self.last_cut, c.number)
        n = sum(c.close() for c in conns)
        with self.lock:
            self.cuts += n
        return n

    def cut_on(self, side: str) -> None:
        """Sever the connection that next carries data from ``side`` ("client": a request
        is dropped; "server": an answer is dropped)."""
        with self.lock:
            self._pending.add(side)

    def cut_during_auth(self, times: int = 1) -> None:
        """Sever the next ``times`` connections that send their login request, each when it
        does (more than a runner's retries: an outage it must give up on)."""
        with self.lock:
            self._auth_armed += times

    def recovered(self) -> bool:
        """Whether a connection opened after the last cut has logged in and carried answers
        (the client is back at work)."""
        with self.lock:
            return any(c.number > self.last_cut and c.answers >= 3 for c in self.conns)

    def pending(self) -> bool:
        with self.lock:
            return bool(self._pending) or self._auth_armed > 0

    def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()
