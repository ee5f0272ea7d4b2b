#!/usr/bin/env python3
"""A plaintext TCP server on loopback for the tunnel tests (listen --forward's backend).

    plain_backend.py MODE [--port-file FILE]

It binds 127.0.0.1 port 0, prints "port N" (and writes N to FILE, whole, once listening) and
serves every connection on a thread of its own until killed. MODE:
  http[:S]      one HTTP/1.0 request: prints "request <path>", replies "hello <path> from
                <peer address>" after S seconds (many clients are then served at once or not
                in time) and closes
  sink          reads to EOF, then replies "got N bytes sha256 HEX" and closes (an upload; the
                reply after the client's EOF shows its half close came through)
  source:N      sends N pseudo-random bytes, then closes its side; prints "sent N sha256 HEX"
                on stdout; reads what comes until EOF
  close-early   reads one line, replies "bye" and closes at once, reading nothing more
  stall         prints "stalled", then neither reads nor writes nor closes (a backend that
                stopped reading: its buffers fill)
"""
import hashlib
import os
import socket
import sys
import threading
import time


def http(delay):
    def serve(c, peer):
        data = b""
        while b"\r\n\r\n" not in data:
            got = c.recv(65536)
            if not got:
                return
            data += got
        path = data.split(b" ")[1].decode()
        print(f"request {path}", flush=True)
        time.sleep(delay)
        body = f"hello {path} from {peer[0]}\n".encode()
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                  str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    return serve


def sink(c, peer):
    h = hashlib.sha256()
    n = 0
    while True:
        got = c.recv(1 << 20)
        if not got:
            break
        h.update(got)
        n += len(got)
    c.sendall(f"got {n} bytes sha256 {h.hexdigest()}\n".encode())


def source(total):
    def serve(c, peer):
        h = hashlib.sha256()
        left = total
        while left:
            piece = os.urandom(min(left, 1 << 20))
            h.update(piece)
            c.sendall(piece)
            left -= len(piece)
        c.shutdown(socket.SHUT_WR)
        print(f"sent {total} sha256 {h.hexdigest()}", flush=True)
        while c.recv(65536):
            pass
    return serve


def close_early(c, peer):
    data = b""
    while b"\n" not in data:
        got = c.recv(1)
        if not got:
            break
        data += got
    c.sendall(b"bye\n")


def stall(c, peer):
    print("stalled", flush=True)
    threading.Event().wait()


def main():
    mode = sys.argv[1]
    handler = {"sink": sink, "close-early": close_early, "stall": stall}.get(mode)
    if mode == "http" or mode.startswith("http:"):
        handler = http(float(mode[5:] or 0))
    if mode.startswith("source:"):
        handler = source(int(mode.split(":", 1)[1]))
    if handler is None:
        sys.exit(f"plain_backend.py: unknown mode {mode}")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(512)
    port = s.getsockname()[1]
    if "--port-file" in sys.argv:
        path = sys.argv[sys.argv.index("--port-file") + 1]
        with open(path + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.rename(path + ".tmp", path)
    print(f"port {port}", flush=True)

    def run(c, peer):
        try:
            handler(c, peer)
        except OSError as e:
            print(f"connection from {peer}: {e}", flush=True)
        finally:
            c.close()

    while True:
        c, peer = s.accept()
        threading.Thread(target=run, args=(c, peer), daemon=True).start()


main()
