#!/usr/bin/env python3
"""tlsfront.py - implicit TLS in front of a POP3 server that only speaks
plain text on stdin/stdout (popa3d in inetd mode): each accepted TLS
connection runs COMMAND with the decrypted stream as its stdin/stdout.

  tlsfront.py --cert PEM --key PEM --port-file FILE -- COMMAND ARGS...
"""
import argparse
import os
import socket
import ssl
import subprocess
import sys
import threading


def pump_in(tls, proc):
    try:
        while True:
            data = tls.recv(65536)
            if not data:
                break
            proc.stdin.write(data)
            proc.stdin.flush()
    except (OSError, ssl.SSLError, BrokenPipeError):
        pass
    try:
        proc.stdin.close()
    except OSError:
        pass


def serve(tls, cmd):
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, bufsize=0)
    t = threading.Thread(target=pump_in, args=(tls, proc), daemon=True)
    t.start()
    try:
        while True:
            data = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") \
                else os.read(proc.stdout.fileno(), 65536)
            if not data:
                break
            tls.sendall(data)
    except (OSError, ssl.SSLError):
        pass
    try:
        tls.close()
    except OSError:
        pass
    proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(a.port_file + ".tmp", a.port_file)
    while True:
        s, _ = ls.accept()
        try:
            tls = ctx.wrap_socket(s, server_side=True)
        except (ssl.SSLError, OSError):
            s.close()
            continue
        threading.Thread(target=serve, args=(tls, cmd), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
