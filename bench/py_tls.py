#!/usr/bin/env python3
"""Python's ssl module as a peer for bench/compare: bulk transfer (server reads, client writes).

  py_tls.py server PORTFILE CERT     accept one TLS connection, read to EOF, print bytes read and the suite
  py_tls.py client PORT CA BYTES     connect, write BYTES in 1 MiB chunks, close
  py_tls.py handshakes PORT SECONDS full|resumed [COUNT]
                                      connect over and over for SECONDS (TLS 1.3, no verification:
                                      the server's cost is what is measured), each time send a small
                                      request and read the first reply byte, so that the ticket
                                      arrives; print "CONNECTIONS RESUMED"
"""
import time
import os
import socket
import ssl
import sys


def server(portfile, cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert)
    ctx.set_ciphers("ECDHE+AESGCM")
    ls = socket.create_server(("127.0.0.1", 0))
    with open(portfile + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    conn, _ = ls.accept()
    tls = ctx.wrap_socket(conn, server_side=True)
    suite = None
    total = 0
    buf = bytearray(1 << 18)
    while True:
        try:
            n = tls.recv_into(buf)
        except ssl.SSLEOFError:
            break
        suite = suite or tls.cipher()[0]
        if n == 0:
            tls.unwrap()  # answer the client's close_notify, so that it can close cleanly
            break
        total += n
    print(total, suite)


def client(port, ca, count):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname="localhost")
    chunk = b"b" * (1 << 20)
    sent = 0
    while sent < count:
        tls.sendall(chunk)
        sent += len(chunk)
    # close_notify, then wait for the server's: closing at once with the server's ticket still
    # unread makes the kernel send a reset, which throws away bytes the server has not read yet.
    tls.unwrap().close()


def handshakes(port, seconds, mode, limit=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    session = None
    count = resumed = 0
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end and (limit is None or count < int(limit)):
        raw = socket.create_connection(("127.0.0.1", int(port)))
        tls = ctx.wrap_socket(raw, server_hostname="localhost",
                              session=session if mode == "resumed" else None)
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        tls.recv(1)
        count += 1
        resumed += tls.session_reused
        session = tls.session
        tls.close()
    print(count, resumed)


if __name__ == "__main__":
    if sys.argv[1] == "handshakes":
        handshakes(*sys.argv[2:6])
        sys.exit(0)
    if sys.argv[1] == "server":
        server(sys.argv[2], sys.argv[3])
    else:
        client(sys.argv[2], sys.argv[3], int(sys.argv[4]))
