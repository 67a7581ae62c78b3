#!/usr/bin/env python3
"""fakepop3.py - a scripted POP3 server for the client tests.

It plays a transcript: lines the client must send and the replies to give,
over plain TCP or TLS, and records every line the client sent, so a test
can check both the client's behaviour and its exact command transcript.

  fakepop3.py --script FILE --transcript FILE --port-file FILE
              [--cert PEM --key PEM] [--timeout SECONDS]

Script lines (one action each; blank lines and "#" comments ignored):
  > TEXT        the client must send exactly TEXT (CRLF-terminated)
  >~ REGEX      the client must send a line matching REGEX (fullmatch)
  < TEXT        send TEXT + CRLF
  <r TEXT       send TEXT with backslash escapes (\\r \\n \\xNN), no CRLF added
  ! repeat N TEXT   send TEXT + CRLF N times
  ! sleep SECONDS   stall
  ! starttls        switch the connection to TLS (after "+OK" to STLS)
  ! close           close the connection now
  ! next            end this connection and accept the next one
When the script of a connection is exhausted the server keeps reading and
recording client lines until the client closes (or --timeout passes),
answering "+OK" to a QUIT.

Maildrop mode (--maildrop DIR, instead of --script): a stateful server
over the files of DIR (one message each, in file-name order, served as
stored): USER/PASS (--password), CAPA (--capa, "" for a server without
CAPA), UIDL, LIST, STAT, RETR, TOP, DELE, NOOP, RSET, QUIT; DELE takes
effect at QUIT only, one connection after another until --timeout.
  --uidl name     the UIDL is the file name (up to its first ".")
  --uidl header   the UIDL is the MD5 of the header block, as popa3d does,
                  so messages with identical headers share one
  --eol crcrlf    each CRLF of a stored message is sent as CR CR LF, as
                  Courier and GNU Mailutils do
  --apop          the greeting carries an APOP timestamp
  --filler N      N more messages after the files (a small plain mail
                  each, UIDL "fillerN"), made up on demand, so a mailbox
                  of a million messages costs no memory
  --retr-delay S  wait S seconds before answering each RETR
  --tls           implicit TLS (with --cert/--key); with a cert and no
                  --tls, STLS is offered (add STLS to --capa)
"UIDL n" and "LIST n" answer for one message, as RFC 1939 says.

Transcript: one line per event: "C: line" for each client line,
"MISMATCH: want X got Y" (the connection is then closed), "EOF" when the
client closed, "CONNECT" for each accepted connection, "TLSERR: ..." when a
handshake fails.
"""
import argparse
import codecs
import hashlib
import os
import re
import socket
import ssl
import sys
import time


def parse_script(path):
    conns, cur = [], []
    with open(path, "r", encoding="latin-1") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            if line == "! next":
                conns.append(cur)
                cur = []
                continue
            cur.append(line)
    conns.append(cur)
    return conns


class Conn:
    def __init__(self, sock, log, deadline):
        self.sock = sock
        self.log = log
        self.buf = b""
        self.deadline = deadline

    def note(self, s):
        self.log.write(s + "\n")
        self.log.flush()

    def send(self, data):
        self.sock.sendall(data)

    def readline(self):
        """Returns one client line without CRLF, or None on EOF/timeout."""
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, OSError, ssl.SSLError):
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        if line.endswith(b"\r"):
            line = line[:-1]
        return line.decode("latin-1")


def play(conn, script, ctx):
    for action in script:
        if action.startswith(">~ "):
            got = conn.readline()
            if got is None:
                conn.note("EOF")
                return
            conn.note("C: " + got)
            if not re.fullmatch(action[3:], got):
                conn.note("MISMATCH: want ~%s got %s" % (action[3:], got))
                return
        elif action.startswith("> ") or action == ">":
            want = action[2:]
            got = conn.readline()
            if got is None:
                conn.note("EOF")
                return
            conn.note("C: " + got)
            if got != want:
                conn.note("MISMATCH: want %s got %s" % (want, got))
                return
        elif action.startswith("<r "):
            conn.send(codecs.escape_decode(action[3:].encode("latin-1"))[0])
        elif action.startswith("< ") or action == "<":
            conn.send(action[2:].encode("latin-1") + b"\r\n")
        elif action.startswith("! repeat "):
            _, _, n, text = action.split(" ", 3)
            line = text.encode("latin-1") + b"\r\n"
            n = int(n)
            chunk = 4096
            while n > 0:
                k = min(n, chunk)
                conn.send(line * k)
                n -= k
        elif action.startswith("! sleep "):
            time.sleep(float(action.split()[2]))
        elif action == "! starttls":
            try:
                conn.sock = ctx.wrap_socket(conn.sock, server_side=True)
            except (ssl.SSLError, OSError) as e:
                conn.note("TLSERR: %s" % e)
                return
        elif action == "! close":
            return
        else:
            raise SystemExit("fakepop3: bad script line: %r" % action)
    # Script done: record whatever else the client sends (QUIT at cleanup).
    while True:
        got = conn.readline()
        if got is None:
            conn.note("EOF")
            return
        conn.note("C: " + got)
        if got == "QUIT":
            conn.send(b"+OK bye\r\n")


def header_block(data):
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = data.find(sep)
        if i >= 0:
            return data[:i]
    return data


FILLER = (b"From: someone@example.org\r\nSubject: hello\r\n"
          b"Message-ID: <filler@example.org>\r\n\r\nJust a note.\r\n")


class Filler(dict):
    """Message n of the made-up tail, built when asked for."""

    def __init__(self, n, dele):
        super().__init__(file=None, data=FILLER, uid="filler%d" % n,
                         dele=False)
        self.n, self.deleset = n, dele

    def __getitem__(self, k):
        if k == "dele":
            return self.n in self.deleset
        return super().__getitem__(k)

    def __setitem__(self, k, v):
        if k == "dele":
            (self.deleset.add if v else self.deleset.discard)(self.n)
        else:
            super().__setitem__(k, v)


class Drop:
    """The files, then --filler made-up messages, as one sequence."""

    def __init__(self, files, filler):
        self.files, self.filler, self.dele = files, filler, set()

    def __len__(self):
        return len(self.files) + self.filler

    def __getitem__(self, i):
        if i < 0:
            i += len(self)
        if i < len(self.files):
            return self.files[i]
        if i - len(self.files) >= self.filler:
            raise IndexError(i)
        return Filler(i - len(self.files) + 1, self.dele)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def live(self):
        """(count, bytes) of the messages not marked for deletion."""
        n = sum(1 for m in self.files if not m["dele"])
        size = sum(len(m["data"]) for m in self.files if not m["dele"])
        nf = self.filler - len(self.dele)
        return n + nf, size + nf * len(FILLER)


def serve_maildrop(conn, a, ctx=None):
    names = sorted(f for f in os.listdir(a.maildrop)
                   if os.path.isfile(os.path.join(a.maildrop, f)))
    msgs = []
    for f in names:
        with open(os.path.join(a.maildrop, f), "rb") as fp:
            data = fp.read()
        if a.uidl == "header":
            uid = hashlib.md5(header_block(data)).hexdigest()
        else:
            uid = f.split(".", 1)[0]
        if a.eol == "crcrlf":
            data = data.replace(b"\r\n", b"\r\r\n")
        msgs.append({"file": f, "data": data, "uid": uid, "dele": False})
    msgs = Drop(msgs, a.filler)

    def ok(text=""):
        conn.send(b"+OK" + (b" " + text.encode() if text else b"") + b"\r\n")

    def err(text):
        conn.send(b"-ERR " + text.encode() + b"\r\n")

    def body(data):
        out = []
        for line in data.split(b"\n"):
            out.append(b"." + line if line.startswith(b".") else line)
        data = b"\n".join(out)
        if data and not data.endswith(b"\n"):
            data += b"\r\n"
        conn.send(data + b".\r\n")

    def pick(arg):
        try:
            n = int(arg)
        except ValueError:
            return None
        if 1 <= n <= len(msgs) and not msgs[n - 1]["dele"]:
            return n
        return None

    stamp = " <%d.%d@fake.example>" % (os.getpid(), int(time.time()))
    conn.send(("+OK fake maildrop ready%s\r\n" %
               (stamp if a.apop else "")).encode())
    authed = False
    user = None
    while True:
        line = conn.readline()
        if line is None:
            conn.note("EOF")
            return
        conn.note("C: " + ("PASS ***" if line.upper().startswith("PASS ")
                           else line))
        parts = line.split(" ")
        cmd, args = parts[0].upper(), parts[1:]
        if cmd == "QUIT":
            if authed:
                for m in msgs.files:
                    if m["dele"]:
                        try:
                            os.unlink(os.path.join(a.maildrop, m["file"]))
                        except FileNotFoundError:
                            pass
            ok("bye")
            return
        if cmd == "CAPA" and a.capa != "":
            conn.send(b"+OK\r\n" + b"".join(
                c.encode() + b"\r\n" for c in a.capa.split(",")) + b".\r\n")
        elif cmd == "STLS" and not authed and ctx is not None and \
                not isinstance(conn.sock, ssl.SSLSocket):
            ok("begin TLS")
            try:
                conn.sock = ctx.wrap_socket(conn.sock, server_side=True)
            except (ssl.SSLError, OSError) as e:
                conn.note("TLSERR: %s" % e)
                return
        elif not authed:
            if cmd == "USER" and len(args) == 1:
                user = args[0]
                ok()
            elif cmd == "PASS" and user is not None and \
                    " ".join(args) == a.password:
                authed = True
                ok("logged in")
            else:
                err("[AUTH] Bad login")
        elif cmd == "NOOP":
            ok()
        elif cmd == "STAT":
            ok("%d %d" % msgs.live())
        elif cmd in ("UIDL", "LIST") and not args:
            ok()
            out = []
            for i, m in enumerate(msgs):
                if not m["dele"]:
                    out.append(("%d %s\r\n" % (
                        i + 1, m["uid"] if cmd == "UIDL"
                        else len(m["data"]))).encode())
                if len(out) >= 4096:
                    conn.send(b"".join(out))
                    out = []
            conn.send(b"".join(out) + b".\r\n")
        elif cmd in ("UIDL", "LIST") and len(args) == 1 and pick(args[0]):
            m = msgs[pick(args[0]) - 1]
            ok("%d %s" % (pick(args[0]), m["uid"] if cmd == "UIDL"
                          else len(m["data"])))
        elif cmd == "RETR" and len(args) == 1 and pick(args[0]):
            time.sleep(a.retr_delay)
            ok()
            body(msgs[pick(args[0]) - 1]["data"])
        elif cmd == "TOP" and len(args) == 2 and pick(args[0]):
            data = msgs[pick(args[0]) - 1]["data"]
            ok()
            body(header_block(data) + b"\r\n\r\n")
        elif cmd == "DELE" and len(args) == 1 and pick(args[0]):
            msgs[pick(args[0]) - 1]["dele"] = True
            ok("marked")
        elif cmd == "RSET":
            for m in msgs:
                m["dele"] = False
            ok()
        else:
            err("no such command or message")


def accept_one(ls, a, ctx, log, deadline, none_note=""):
    """The next client as a Conn (TLS first with --tls); None when none
    came before the deadline, False when its TLS handshake failed."""
    try:
        s, _ = ls.accept()
    except socket.timeout:
        log.write(none_note)
        return None
    log.write("CONNECT\n")
    log.flush()
    if a.tls:
        try:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            s = ctx.wrap_socket(s, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log.write("TLSERR: %s\n" % e)
            log.flush()
            s.close()
            return False
    return Conn(s, log, deadline)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script")
    ap.add_argument("--maildrop")
    ap.add_argument("--password", default="pw")
    ap.add_argument("--capa", default="USER,UIDL,TOP,PIPELINING")
    ap.add_argument("--uidl", choices=["name", "header"], default="name")
    ap.add_argument("--eol", choices=["crlf", "crcrlf"], default="crlf")
    ap.add_argument("--apop", action="store_true")
    ap.add_argument("--filler", type=int, default=0)
    ap.add_argument("--retr-delay", type=float, default=0.0)
    ap.add_argument("--transcript", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--tls", action="store_true", help="implicit TLS")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()

    if (a.script is None) == (a.maildrop is None):
        raise SystemExit("fakepop3: give --script or --maildrop")
    conns = parse_script(a.script) if a.script else None
    ctx = None
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, a.port_file)
    deadline = time.monotonic() + a.timeout
    with open(a.transcript, "w", encoding="latin-1") as log:
        if a.maildrop:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ls.settimeout(left)
                c = accept_one(ls, a, ctx, log, deadline)
                if c is None:
                    break
                if c is False:
                    continue
                try:
                    serve_maildrop(c, a, ctx)
                except (BrokenPipeError, ConnectionResetError,
                        ssl.SSLError) as e:
                    c.note("SENDERR: %s" % e)
                try:
                    c.sock.close()
                except OSError:
                    pass
            ls.close()
            return 0
        for script in conns:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ls.settimeout(left)
            c = accept_one(ls, a, ctx, log, deadline, "NOCONNECT\n")
            if c is None:
                break
            if c is False:
                continue
            try:
                play(c, script, ctx)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
                c.note("SENDERR: %s" % e)
            try:
                c.sock.close()
            except OSError:
                pass
    ls.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
