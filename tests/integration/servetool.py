"""Shared by test_serve.py and test_serve_crash.py: a running `pigeon serve` driven with
urllib, a private configuration, API keys, and the record of every (method, route,
status) answered (SEEN) that test_serve.py checks against docs/openapi.yaml."""
import json
import os
import re
import subprocess
import threading
import urllib.error
import urllib.request

import harness

SEEN = set()  # (method, route template, status) of every answer in this file


def template(method, path):
    path = path.split("?")[0]
    if re.fullmatch(r"/v1/messages/[0-9A-Z]{26}", path) or (
            path.startswith("/v1/messages/") and path != "/v1/messages/batch"):
        return "/v1/messages/{id}"
    return path


def make_env(port=1):
    d = harness.tmpdir("pigeon-serve-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write("[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Sender <sender@pigeon.test>\ntimeout = 5\n"
                "[account other]\nhost = 127.0.0.1\nport = %d\ntls = none\n" % (port, port))
    os.chmod(cfg, 0o600)
    return harness.with_spool({"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"),
                               "HOME": d, "PIGEON_PASSWORD": None})


def new_key(env, *args):
    rc, out, err = harness.pigeon("key", "create", *args, env=env)
    assert rc == 0, (rc, err)
    key = out.decode().strip()
    assert re.fullmatch(r"pgk_[0-9a-f]{16}_[0-9a-f]{64}", key), key
    return key


class Serve:
    def __init__(self, env, *args, tls=None):
        full = dict(os.environ)
        full.update({k: v for k, v in env.items() if v is not None})
        for k, v in env.items():
            if v is None:
                full.pop(k, None)
        argv = [harness.pigeon_path(), "serve", "--http-listen", "127.0.0.1:0"] + list(args)
        self.proc = harness.spawn(argv, env=full, stderr=subprocess.PIPE)
        line = self.proc.stderr.readline().decode()
        m = re.search(r"\(port (\d+)\)", line)
        assert m, "serve did not start: %r" % line
        self.port = int(m.group(1))
        # The request log goes to stderr: drain it (a full pipe would stall the server).
        self.log = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.scheme = "https" if tls else "http"
        self.ctx = tls

    def request(self, method, path, body=None, key=None, headers=None, raw=None):
        """(status, headers, parsed JSON or text) of one request through urllib."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        if key:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        req = urllib.request.Request("%s://127.0.0.1:%d%s" % (self.scheme, self.port, path),
                                     data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=20, context=self.ctx) as r:
                status, hdrs, payload = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, payload = e.code, e.headers, e.read()
        SEEN.add((method, template(method, path), status))
        ctype = hdrs.get("Content-Type", "")
        if "json" in ctype:
            doc = json.loads(payload)
            if ctype == "application/problem+json":
                assert doc["status"] == status and doc["type"] == "about:blank", doc
                assert doc["title"] and isinstance(doc["detail"], str), doc
            return status, hdrs, doc
        return status, hdrs, payload.decode()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line.decode("utf-8", "replace"))

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(20) == 0
        harness.stop(self.proc)


MSG = {"from": "App <app@shop.test>", "to": ["Ann <ann@example.org>"], "subject": "Order 42",
       "text": "Thank you.\n"}
