"""A webhook receiver for the tests and the bench, on Python's http.server.

It checks every POST the way docs/webhooks.md tells a user to: the Pigeon-Signature
header's v1 is the HMAC-SHA256 of "<t>.<body>" with the shared secret (compared in
constant time), t is within the replay window, the body is a JSON array of events. It can
be slow (`delay` seconds per request) and answer errors (`fail_next` requests get
`fail_status`). Everything it accepted is in `events` (in arrival order); requests with a
bad signature are counted in `bad_signatures` and answered 401.
"""
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLAY_WINDOW = 300


def verify(secret, header, body, now=None):
    """True when header ("t=...,v1=...") signs body with secret within the window."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, sig = parts.get("t"), parts.get("v1")
    if t is None or sig is None or not t.isdigit():
        return False
    if abs((now or time.time()) - int(t)) > REPLAY_WINDOW:
        return False
    mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, sig)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass   # a sender killed mid-request (the kill -9 tests) resets its connection


class Receiver:
    def __init__(self, secret, port=0, tls=None):
        self.secret = secret
        self.port = port
        self.tls = tls            # an ssl.SSLContext for https, or None
        self.chunked = False      # answer with Transfer-Encoding: chunked
        self.delay = 0.0
        self.fail_next = 0
        self.fail_status = 500
        self.lock = threading.Lock()
        self.events = []          # every event accepted, in order of arrival
        self.posts = []           # (status answered, number of events, headers) per POST
        self.bad_signatures = 0
        self.ids = set()          # the unique event ids accepted
        self.first_new = None     # when the first event arrived (time.monotonic())
        self.last_new = None      # when the last new (not duplicate) event arrived
        self.server = None
        self.thread = None

    def _handler(self):
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True   # headers and body are two writes

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if len(body) < n:   # the sender died mid-request: nothing to answer
                    self.close_connection = True
                    return
                if recv.delay:
                    time.sleep(recv.delay)
                with recv.lock:
                    status = 200
                    if recv.fail_next > 0:
                        recv.fail_next -= 1
                        status = recv.fail_status
                    elif not verify(recv.secret, self.headers.get("Pigeon-Signature", ""), body):
                        recv.bad_signatures += 1
                        status = 401
                    events = json.loads(body) if status == 200 else []
                    if status == 200:
                        assert isinstance(events, list) and events, body[:200]
                        assert self.headers["Pigeon-Event-Id"] == events[0]["id"]
                        assert int(self.headers["Pigeon-Event-Count"]) == len(events)
                        recv.events.extend(events)
                        before = len(recv.ids)
                        recv.ids.update(e["id"] for e in events)
                        if len(recv.ids) > before:
                            recv.last_new = time.monotonic()
                            if recv.first_new is None:
                                recv.first_new = recv.last_new
                    recv.posts.append((status, len(events), dict(self.headers)))
                reply = b'{"ok":true}' if status == 200 else b'{"error":"try later"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if recv.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    half = len(reply) // 2
                    for part in (reply[:half], reply[half:]):
                        self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)

        return Handler

    def start(self):
        self.server = _Server(("127.0.0.1", self.port), self._handler())
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        if self.tls is not None:
            return "https://localhost:%d/hook" % self.port
        return "http://127.0.0.1:%d/hook" % self.port

    def unique_ids(self):
        with self.lock:
            return set(self.ids)

    def unique_count(self):
        with self.lock:
            return len(self.ids)

    def snapshot(self):
        with self.lock:
            return list(self.events)
