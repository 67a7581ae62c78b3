#!/usr/bin/env python3
"""oauthserver.py - a small OAuth 2.0 authorization server for the tests.

Serves, from one process:
  HTTPS  POST /token       RFC 6749 token endpoint: refresh_token and
                           client_credentials grants (client_secret_post)
  HTTP   POST /introspect  RFC 7662 token introspection, for Dovecot's
                           oauth2 passdb (introspection_mode = post)
  HTTP   POST /expire      test control: every token issued so far becomes
                           inactive (as if its lifetime had passed)
  HTTP   POST /revoke      test control: the refresh token is revoked

Every request is appended to STATE/requests.log as one line
("token refresh_token 200", "introspect active", ...), and the ports are
written to STATE/ports once both listeners are up.

usage: oauthserver.py STATE CERT KEY CLIENT_ID CLIENT_SECRET REFRESH_TOKEN
       USERNAME SCOPE EXPIRES_IN
"""
import http.server
import json
import os
import secrets
import ssl
import sys
import threading
import urllib.parse

(STATE, CERT, KEY, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, USERNAME, SCOPE,
 EXPIRES_IN) = sys.argv[1:10]

lock = threading.Lock()
active_tokens = set()
refresh_tokens = {REFRESH_TOKEN}


def log(line):
    with lock:
        with open(os.path.join(STATE, "requests.log"), "a") as f:
            f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def form(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n).decode()
        return {k: v[0] for k, v in urllib.parse.parse_qs(
            raw, keep_blank_values=True).items()}

    def do_POST(self):
        f = self.form()
        if self.path == "/token" and self.server.tls:
            self.token(f)
        elif self.path == "/introspect" and not self.server.tls:
            tok = f.get("token", "")
            with lock:
                ok = tok in active_tokens
            log("introspect " + ("active" if ok else "inactive"))
            if ok:
                self.reply(200, {"active": True, "username": USERNAME,
                                 "scope": SCOPE})
            else:
                self.reply(200, {"active": False})
        elif self.path == "/expire" and not self.server.tls:
            with lock:
                active_tokens.clear()
            log("control expire")
            self.reply(200, {})
        elif self.path == "/revoke" and not self.server.tls:
            with lock:
                refresh_tokens.clear()
            log("control revoke")
            self.reply(200, {})
        else:
            self.reply(404, {"error": "not_found"})

    def token(self, f):
        grant = f.get("grant_type", "")

        def fail(status, error, desc):
            log("token %s %d %s" % (grant or "-", status, error))
            self.reply(status, {"error": error, "error_description": desc})

        if self.headers.get("Content-Type", "") != \
                "application/x-www-form-urlencoded":
            return fail(400, "invalid_request", "form body expected")
        if f.get("client_id") != CLIENT_ID or \
                f.get("client_secret") != CLIENT_SECRET:
            return fail(401, "invalid_client", "Client authentication failed.")
        resp = {"token_type": "Bearer", "expires_in": int(EXPIRES_IN)}
        if grant == "refresh_token":
            rt = f.get("refresh_token", "")
            with lock:
                known = rt in refresh_tokens
                if known:
                    # rotate, as Microsoft does; the old one stays valid
                    new = "rt-" + secrets.token_hex(8)
                    refresh_tokens.add(new)
                    resp["refresh_token"] = new
            if not known:
                return fail(400, "invalid_grant",
                            "Token has been expired or revoked.")
        elif grant == "client_credentials":
            if f.get("scope") != SCOPE:
                return fail(400, "invalid_scope",
                            "The provided scope is not granted.")
        else:
            return fail(400, "unsupported_grant_type", "grant: " + grant)
        tok = "at-" + secrets.token_urlsafe(24)
        with lock:
            active_tokens.add(tok)
        resp["access_token"] = tok
        resp["scope"] = SCOPE
        log("token %s 200" % grant)
        self.reply(200, resp)


def serve(tls):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.tls = tls
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(CERT, KEY)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def main():
    https_port = serve(True)
    http_port = serve(False)
    tmp = os.path.join(STATE, "ports.tmp")
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (https_port, http_port))
    os.rename(tmp, os.path.join(STATE, "ports"))
    threading.Event().wait()


if __name__ == "__main__":
    main()
