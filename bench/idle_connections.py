#!/usr/bin/env python3
"""Opens N idle HTTP/2 connections to a gRPC server on loopback and keeps them open (bench/connections.sh runs it).

Each connection sends the client preface and an empty SETTINGS, acknowledges the server's SETTINGS and answers its
keepalive PINGs, and otherwise sends nothing: what an idle client of any gRPC library looks like to the server.
Connections use source addresses 127.0.0.1, 127.0.0.2, ... (about 28,000 ephemeral ports each) so that more than one
address's worth can be opened.

Prints "open N" once every connection is set up (or "refused N" for those the server refused or closed), then keeps
them until stdin closes or --hold seconds pass, and prints "closed-by-server N" for those the server closed meanwhile.
"""
import argparse
import resource
import selectors
import socket
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 0x4, 0x6, 0x7


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--per-address", type=int, default=20000, help="connections per source address")
    ap.add_argument("--hold", type=float, default=3600)
    ap.add_argument("--connect-batch", type=int, default=200)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    sel = selectors.DefaultSelector()
    buffers = {}
    opened = refused = 0
    hello = PREFACE + frame(SETTINGS, 0, 0)

    stdin_closed = False

    def service(timeout):
        nonlocal refused, stdin_closed
        for key, _ in sel.select(timeout):
            s = key.fileobj
            if key.data == "stdin":
                if not sys.stdin.readline():
                    stdin_closed = True
                    sel.unregister(sys.stdin)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                buffers.pop(s, None)
                refused += 1
                continue
            buf = buffers[s] + data
            while len(buf) >= 9:
                length = int.from_bytes(buf[0:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, flags = buf[3], buf[4]
                payload = buf[9:9 + length]
                buf = buf[9 + length:]
                if kind == SETTINGS and not flags & 1:
                    s.sendall(frame(SETTINGS, 1, 0))
                elif kind == PING and not flags & 1:
                    s.sendall(frame(PING, 1, 0, payload))
            buffers[s] = buf

    for i in range(a.count):
        source = "127.0.0.%d" % (1 + i // a.per_address)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((source, 0))
            s.connect(("127.0.0.1", a.port))
            s.sendall(hello)
        except OSError as e:
            print("connect %d failed: %s" % (i, e), file=sys.stderr)
            s.close()
            refused += 1
            continue
        s.setblocking(False)
        buffers[s] = b""
        sel.register(s, selectors.EVENT_READ)
        opened += 1
        if opened % a.connect_batch == 0:
            service(0)

    deadline = time.time() + 5
    while time.time() < deadline:
        service(0.1)
    print("open %d" % (opened - refused), flush=True)
    if refused:
        print("refused %d" % refused, flush=True)

    before = refused
    end = time.time() + a.hold
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    while time.time() < end and not stdin_closed:
        service(1.0)
    print("closed-by-server %d" % (refused - before), flush=True)


if __name__ == "__main__":
    main()
