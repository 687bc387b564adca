"""Requests pipelined behind a slow one on a client connection are routed when their turn comes:
a route table swapped meanwhile, and a replica that left it and stopped, cost them nothing."""

from __future__ import annotations

import socket
import threading

from tests.procs import wait_for
from tests.proxy.conftest import ProxyFactory, Upstreams


class Doomed:
    """A replica the test stops: it holds each request until released, answers it, closes the
    connection, and once stopped refuses connections (its listening socket is closed)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.served = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # stopped
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if not data:
                    continue
                self.arrived.set()
                self.release.wait(60)
                body = b"doomed\n"
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Upstream: doomed\r\nConnection: close\r\n\r\n%s"
                    % (len(body), body)
                )
                self.served += 1

    def stop(self) -> None:
        self.listener.close()


class Answers:
    """Answers framed by Content-Length read one by one from a socket, keeping what follows."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the proxy closed the connection; unread: {self.data!r}")
        self.data += chunk

    def next(self) -> tuple[int, str]:
        while b"\r\n\r\n" not in self.data:
            self._more()
        head, _, rest = self.data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = int(fields.get("content-length", "0"))
        while len(rest) < length:
            self._more()
            head, _, rest = self.data.partition(b"\r\n\r\n")
        self.data = rest[length:]
        return int(lines[0].split()[1]), fields.get("x-upstream", "")


def test_pipelined_requests_go_to_the_table_in_force_when_their_turn_comes(
    start_proxy: ProxyFactory, upstreams: Upstreams
) -> None:
    doomed = Doomed()
    old = f"127.0.0.1:{doomed.port}"
    proxy = start_proxy({"upstreams": {"old": [old], "b": [upstreams.addr("b")]}, "weights": {"old": 100}})
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as client:
        # Three requests in one write: the first reaches the old replica and is held there; the
        # other two wait behind it on the connection, read and routed under the old table.
        client.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(3)))
        wait_for(doomed.arrived.is_set, what="the first request at the old replica")
        # The old revision leaves the table and its replica stops before the first answer.
        status, doc = proxy.swap({"upstreams": {"b": [upstreams.addr("b")]}, "weights": {"b": 100}})
        assert status == 200, doc
        doomed.stop()
        doomed.release.set()
        answers = Answers(client)
        got = [answers.next() for _ in range(3)]
    assert got == [(200, "doomed"), (200, "b"), (200, "b")], got
    assert doomed.served == 1


def test_pipelined_requests_reach_the_replacement_replica_of_their_revision(
    start_proxy: ProxyFactory, upstreams: Upstreams
) -> None:
    # The revision stays in the table, but its replica was replaced (a restart on another port):
    # requests routed to the revision before the swap go to the replica it has now.
    doomed = Doomed()
    proxy = start_proxy({"upstreams": {"web": [f"127.0.0.1:{doomed.port}"]}, "weights": {"web": 100}})
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as client:
        client.sendall(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\nGET /second HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(doomed.arrived.is_set, what="the first request at the old replica")
        doomed.stop()
        status, doc = proxy.swap({"upstreams": {"web": [upstreams.addr("b")]}, "weights": {"web": 100}})
        assert status == 200, doc
        doomed.release.set()
        answers = Answers(client)
        assert [answers.next(), answers.next()] == [(200, "doomed"), (200, "b")]
    assert doomed.served == 1
