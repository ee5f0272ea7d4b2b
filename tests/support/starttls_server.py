#!/usr/bin/env python3
"""A STARTTLS server for the protocols Debian has no server for that a test can run unprivileged
(FTP, XMPP), and for the server misbehaviours no real server shows: refusing, injecting bytes
after its go-ahead, stalling. It follows each RFC's exchange, then speaks TLS through Python's
ssl module (OpenSSL, not sslstream) on the same connection.

  starttls_server.py PROTO MODE CERT KEY
    PROTO: smtp imap pop3 ftp xmpp postgres ldap
    MODE:  ok        the exchange, then TLS; after the handshake sends "tls-ok PROTO\n"
           refuse    no STARTTLS capability, or an error answer (postgres: 'N'; ldap: code 2)
           inject    the go-ahead followed at once by more plaintext in the same write
           stall     greets, then says nothing more
           longline  (smtp) a greeting line of 10000 bytes, no end
           flood     (smtp) a greeting of more than 64 KiB in 80-byte lines, no end
Prints "listening on 127.0.0.1:PORT" once listening (port chosen by the system), serves one
connection and exits.
"""
import socket
import ssl
import sys
import time

proto, mode, certfile, keyfile = sys.argv[1:5]
INJECT = b"250 injected\r\n"


def lines(conn):
    """The client's lines, one at a time (without CR LF)."""
    buf = b""
    while True:
        while b"\n" not in buf:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
        line, buf = buf.split(b"\n", 1)
        yield line.rstrip(b"\r")


def recv_until(conn, needle):
    buf = b""
    while needle not in buf:
        data = conn.recv(4096)
        if not data:
            raise EOFError("client closed")
        buf += data
    return buf


def go_ahead(conn, text):
    """The server's go-ahead: alone, or with injected plaintext after it in one write."""
    conn.sendall(text + (INJECT if mode == "inject" else b""))


def stall(conn):
    time.sleep(120)  # the client must give up first; the test kills us by pid
    return False


def smtp(conn):
    if mode == "longline":
        conn.sendall(b"220 " + b"x" * 10000)
        return stall(conn)
    if mode == "flood":
        conn.sendall((b"220-" + b"y" * 76 + b"\r\n") * 1000)
        return stall(conn)
    conn.sendall(b"220-test.example ESMTP scripted\r\n220 test.example ready\r\n")
    if mode == "stall":
        return stall(conn)
    for line in lines(conn):
        verb = line.split(b" ")[0].upper()
        if verb == b"EHLO":
            caps = [b"250-test.example hello " + line[5:], b"250-PIPELINING"]
            if mode != "refuse":
                caps.append(b"250-STARTTLS")
            conn.sendall(b"\r\n".join(caps + [b"250 8BITMIME"]) + b"\r\n")
        elif verb == b"STARTTLS":
            go_ahead(conn, b"220 2.0.0 ready to start TLS\r\n")
            return True
        else:
            conn.sendall(b"500 unknown command\r\n")
    return False


def imap(conn):
    conn.sendall(b"* OK [CAPABILITY IMAP4rev1] scripted ready\r\n")
    if mode == "stall":
        return stall(conn)
    for line in lines(conn):
        tag, _, cmd = line.partition(b" ")
        if cmd.upper() == b"CAPABILITY":
            tls = b"" if mode == "refuse" else b" STARTTLS"
            conn.sendall(b"* CAPABILITY IMAP4rev1" + tls + b" LOGINDISABLED\r\n" + tag +
                         b" OK done\r\n")
        elif cmd.upper() == b"STARTTLS":
            go_ahead(conn, tag + b" OK begin TLS now\r\n")
            return True
        else:
            conn.sendall(tag + b" BAD unknown\r\n")
    return False


def pop3(conn):
    conn.sendall(b"+OK scripted POP3 ready\r\n")
    if mode == "stall":
        return stall(conn)
    for line in lines(conn):
        if line.upper() == b"CAPA":
            tls = b"" if mode == "refuse" else b"STLS\r\n"
            conn.sendall(b"+OK capabilities\r\nUSER\r\n" + tls + b"UIDL\r\n.\r\n")
        elif line.upper() == b"STLS":
            go_ahead(conn, b"+OK begin TLS\r\n")
            return True
        else:
            conn.sendall(b"-ERR unknown\r\n")
    return False


def ftp(conn):
    conn.sendall(b"220-scripted FTP\r\n free text line\r\n220 ready\r\n")
    if mode == "stall":
        return stall(conn)
    for line in lines(conn):
        if line.upper() == b"AUTH TLS":
            if mode == "refuse":
                conn.sendall(b"504 AUTH TLS not supported here\r\n")
                continue
            go_ahead(conn, b"234 AUTH TLS ok\r\n")
            return True
        conn.sendall(b"500 unknown\r\n")
    return False


def xmpp(conn):
    head = recv_until(conn, b"version='1.0'>")  # the XML declaration, then the stream header
    if b"to='localhost'" not in head and b'to="localhost"' not in head:
        conn.sendall(b"<stream:error><host-unknown/></stream:error>")
        return False
    conn.sendall(b"<?xml version='1.0'?><stream:stream from='localhost' id='s1' version='1.0' "
                 b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
    if mode == "stall":
        return stall(conn)
    tls = b"" if mode == "refuse" else b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    conn.sendall(b"<stream:features>" + tls +
                 b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN"
                 b"</mechanism></mechanisms></stream:features>")
    recv_until(conn, b"/>")
    go_ahead(conn, b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    return True


def postgres(conn):
    if mode == "stall":
        return stall(conn)
    request = b""
    while len(request) < 8:
        request += conn.recv(8 - len(request))
    if request != b"\x00\x00\x00\x08\x04\xd2\x16\x2f":
        return False
    if mode == "refuse":
        conn.sendall(b"N")
        return False
    go_ahead(conn, b"S")
    return True


LDAP_REQUEST = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16" + b"1.3.6.1.4.1.1466.20037"


def ldap(conn):
    if mode == "stall":
        return stall(conn)
    got = b""
    while len(got) < len(LDAP_REQUEST):
        data = conn.recv(64)
        if not data:
            return False
        got += data
    if got != LDAP_REQUEST:
        return False
    code = 2 if mode == "refuse" else 0
    diag = b"unsupported extended operation" if code else b""
    body = (b"\x0a\x01" + bytes([code]) + b"\x04\x00" + b"\x04" + bytes([len(diag)]) + diag)
    op = b"\x78" + bytes([len(body)]) + body
    msg = b"\x02\x01\x01" + op
    go_ahead(conn, b"\x30" + bytes([len(msg)]) + msg)
    return code == 0


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print("listening on 127.0.0.1:%d" % listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    conn.settimeout(60)
    try:
        if not globals()[proto](conn):
            return
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        tls = ctx.wrap_socket(conn, server_side=True)
        tls.sendall(b"tls-ok " + proto.encode() + b"\n")
        print("handshake done", flush=True)
        try:
            while tls.recv(4096):
                pass
            tls.unwrap()
        except (ssl.SSLError, OSError):
            pass
    except (ssl.SSLError, OSError, EOFError) as e:
        print("server: %s" % e, flush=True)


main()
