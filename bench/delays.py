#!/usr/bin/env python3
"""Delays of Moat's visibility paths, measured from outside as a user sees them (used by
bench/telemetry.sh; standard library only).

  alert  ADMIN HOOK_PORT N           event -> signed alert webhook delivered: a request with a
                                     bad token to the admin API (an `auth.failed` audit event,
                                     matched by a rule with threshold 0 and no quiet period),
                                     until the webhook POST reaches a receiver on HOOK_PORT.
  logs   GATEWAY ADMIN MOAT DATA N   invocation -> its line printed by `moat logs NAME -f`:
                                     a request to /talker (tp-log) with a unique marker, until
                                     the follower prints the marker.
  sink   PORT                        an OTLP/HTTP collector that reads and discards every POST
                                     (answers 200), until killed.

Prints "p50_ms p99_ms n" (p99 is the nearest-rank percentile, so with n < 100 it is the
largest sample).
"""

import http.server
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid


def percentile(samples, p):
    s = sorted(samples)
    rank = max(1, -(-len(s) * p // 100))  # nearest rank, ceil(n * p / 100)
    return s[int(rank) - 1]


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def alert(admin, hook_port, n):
    arrived = []
    got = threading.Event()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            now = time.monotonic()
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(204)
            self.end_headers()
            arrived.append(now)
            got.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    delays = []
    for i in range(n):
        got.clear()
        seen = len(arrived)
        t0 = time.monotonic()
        # A path of its own each time: failed logins from one address at one path within a
        # second are folded into one record at the second's end; each sample is a first.
        status = get(f"{admin}/v1/functions/bench-{i}", {"authorization": "Bearer not-a-token"})
        assert status == 401, status
        if not got.wait(10):
            raise SystemExit("no webhook delivery within 10 s")
        delays.append(arrived[seen] - t0)
        time.sleep(0.05)
    server.shutdown()
    return delays


def logs(gateway, admin, moat, data, n):
    follow = subprocess.Popen(
        [moat, "--admin", admin, "--data-dir", data, "logs", "talker", "-f"],
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    lines = []
    cond = threading.Condition()

    def read():
        for line in follow.stdout:
            with cond:
                lines.append((time.monotonic(), line))
                cond.notify_all()

    threading.Thread(target=read, daemon=True).start()
    time.sleep(1.5)  # let the follower print the backlog first
    delays = []
    try:
        for _ in range(n):
            # The node pushes each line to `logs -f` once its writer has stored it, in
            # batches gathered for up to 50 ms: space the samples out at random so that
            # each starts its own batch rather than landing at a fixed phase of another's.
            time.sleep(random.uniform(0.1, 0.3))
            marker = "m" + uuid.uuid4().hex
            t0 = time.monotonic()
            assert get(f"{gateway}/talker?{marker}") == 200
            deadline = t0 + 10
            with cond:
                while True:
                    hit = [t for t, line in lines if marker in line]
                    if hit:
                        delays.append(hit[0] - t0)
                        break
                    if not cond.wait(max(0.0, deadline - time.monotonic())):
                        raise SystemExit("`moat logs -f` did not show the invocation within 10 s")
    finally:
        follow.kill()
    return delays


def sink(port):
    """Reads each POST into one reused buffer and throws it away: the collector should cost
    the machine as little as possible, since it shares the cores with the node it measures."""
    server = socket.create_server(("127.0.0.1", port))

    def serve(conn):
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        pending = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in pending:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    pending += chunk
                head, _, rest = pending.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"content-length":
                        length = int(value)
                left = length - len(rest)
                pending = rest[length:] if left < 0 else b""
                while left > 0:
                    n = conn.recv_into(view[: min(left, len(buf))])
                    if n == 0:
                        return
                    left -= n
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main():
    kind = sys.argv[1]
    if kind == "sink":
        sink(int(sys.argv[2]))
        return
    if kind == "alert":
        admin, port, n = sys.argv[2:5]
        d = alert(admin, int(port), int(n))
    elif kind == "logs":
        gateway, admin, moat, data, n = sys.argv[2:7]
        d = logs(gateway, admin, moat, data, int(n))
    else:
        raise SystemExit(f"unknown measurement {kind}")
    print(f"{percentile(d, 50) * 1000:.1f} {percentile(d, 99) * 1000:.1f} {len(d)}")


if __name__ == "__main__":
    main()
