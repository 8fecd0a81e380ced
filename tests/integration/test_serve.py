#!/usr/bin/python3
"""`pigeon serve`: the HTTP submission API (issue 10), driven by Python's urllib and
http.client as independent clients.

Checks what an application would: 202 with an id only for what is in the spool (read
back with `pigeon queue show` and parsed with Python's email package), problem details
(RFC 9457) naming the field for every kind of bad input, keys (401, 403 outside scope,
domain or account, 429 over rate), tenant isolation (another key's ids are 404 on every
route), Idempotency-Key (same id, nothing new; 409 with another body), batches with
per-item results, GET state and DELETE cancel, group commit (64 concurrent clients share
commits: fewer commits than messages), keep-alive, TLS, /healthz and /metrics, and
delivery of a submitted message by `pigeon daemon` to aiosmtpd. Finally every route and
status code of docs/openapi.yaml must have been seen in these tests, and nothing seen
that it does not document.
"""
import base64
import email
import email.policy
import http.client
import json
import os
import re
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pki  # noqa: E402
import servers  # noqa: E402
from harness import test  # noqa: E402
from servetool import MSG, SEEN, Serve, make_env, new_key  # noqa: E402

def show(env, qid):
    rc, out, err = harness.pigeon("queue", "show", qid, "--json", env=env)
    assert rc == 0, (rc, err)
    return json.loads(out)


def stored_message(env, qid):
    """The stored message bytes, parsed by Python's email package."""
    if env.get("PIGEON_SPOOL"):
        hexed = harness.pg_query(env["PIGEON_SPOOL"], "SELECT encode(string_agg(b.data, ''::bytea "
                                 "ORDER BY b.seq), 'hex') FROM body b JOIN message m ON m.id = "
                                 "b.msg WHERE m.queue_id = '%s'" % qid)
        raw = bytes.fromhex(hexed.strip())
        return email.message_from_bytes(raw, policy=email.policy.default), raw
    spool = os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db")
    import sqlite3
    db = sqlite3.connect(spool)
    rows = db.execute("SELECT b.data FROM body b JOIN message m ON m.id = b.msg "
                      "WHERE m.queue_id = ? ORDER BY b.seq", (qid,)).fetchall()
    db.close()
    raw = b"".join(r[0] for r in rows)
    return email.message_from_bytes(raw, policy=email.policy.default), raw


@test(timeout=120)
def send_store_read_back_and_errors():
    env = make_env()
    key = new_key(env, "--account", "main", "--from-domain", "shop.test")
    s = Serve(env, "--max-message-size", "200000")
    try:
        pdf = b"%PDF-1.4 fake\x00\xff"
        msg = dict(MSG, cc="Bob <bob@example.org>", bcc=["hidden@example.org"],
                   reply_to="help@shop.test", html="<p>Thank <b>you</b></p>",
                   headers={"X-Order": "42"}, tags=["order", "eu-1"],
                   attachments=[{"content": base64.b64encode(pdf).decode(),
                                 "filename": "invoice.pdf", "type": "application/pdf"}])
        status, hdrs, doc = s.request("POST", "/v1/messages", msg, key)
        assert status == 202 and re.fullmatch(r"[0-9A-Z]{26}", doc["id"]), (status, doc)
        qid = doc["id"]
        entry = show(env, qid)
        assert entry["account"] == "main" and entry["mail_from"] == "app@shop.test", entry
        assert sorted(r["address"] for r in entry["recipients"]) == [
            "ann@example.org", "bob@example.org", "hidden@example.org"]
        parsed, raw = stored_message(env, qid)
        assert parsed["Subject"] == "Order 42" and parsed["X-Order"] == "42"
        assert parsed["X-Pigeon-Tags"] == "order, eu-1"
        assert "Bcc" not in parsed and b"hidden@example.org" not in raw
        att = [p for p in parsed.iter_attachments()][0]
        assert att.get_filename() == "invoice.pdf" and att.get_content() == pdf
        plain = parsed.get_body(("plain",))
        assert plain is not None and plain.get_content().strip() == "Thank you.", parsed
        # GET: its state per recipient.
        status, _, doc = s.request("GET", "/v1/messages/" + qid, key=key)
        assert status == 200 and doc["state"] == "queued" and len(doc["recipients"]) == 3, doc
        assert all(r["state"] == "queued" and r["attempts"] == 0 for r in doc["recipients"])

        def problem(body, want, field, raw=None, headers=None):
            status, _, doc = s.request("POST", "/v1/messages", body, key, raw=raw,
                                       headers=headers)
            assert status == want, (status, doc)
            assert doc["detail"].startswith(field), (field, doc["detail"])
        problem(dict(MSG, to=["ok@example.org", "not an address"]), 400, "/to/1")
        problem(dict(MSG, to=5), 400, "/to")
        problem(dict(MSG, subject=["x"]), 400, "/subject")
        problem(dict(MSG, subject="a\r\nBcc: victim@example.org"), 400, "/subject")
        problem(dict(MSG, headers={"X-A": "a\r\nBcc: victim@example.org"}), 400, "/headers/X-A")
        problem(dict(MSG, headers={"Bad Name": "x"}), 400, "/headers/Bad Name")
        problem(dict(MSG, **{"from": "a@shop.test\r\nRCPT TO:<x@y>"}), 400, "/from")
        problem({k: v for k, v in MSG.items() if k != "from"}, 400, "/from")
        problem(dict(MSG, to=[]), 400, "/to")
        problem(dict(MSG, bc="typo@example.org"), 400, "/bc")
        problem(dict(MSG, attachments=[{"content": "!!!"}]), 400, "/attachments/0/content")
        problem(dict(MSG, attachments=[{"filename": "x"}]), 400, "/attachments/0/content")
        problem(None, 400, "not valid JSON", raw=b'{"from": "a@shop.test", ')
        problem(None, 400, "not valid JSON", raw=b'{"from": "\xff\xfe"}')
        problem(None, 400, "not valid JSON", raw=b"[" * 5000 + b"]" * 5000)
        problem(None, 400, "not valid JSON", raw=b'{"a":1,"a":2}')
        problem(None, 400, "a message must be", raw=b"[]")
        problem(None, 415, "send application/json", raw=b"{}",
                headers={"Content-Type": "text/plain"})
        problem(dict(MSG, **{"from": "x@evil.test"}), 403, "/from")
        problem(dict(MSG, account="other"), 403, "/account")
        problem(dict(MSG, text="x" * 300000), 413, "the message is")
        # Nothing of those reached the spool.
        rc, out, _ = harness.pigeon("queue", "list", "--json", env=env)
        assert [m["queue_id"] for m in json.loads(out)] == [qid], out
        # An oversized body is refused by the HTTP layer before it is read whole.
        status, _, doc = s.request("POST", "/v1/messages", key=key, raw=b"x" * (3 << 20))
        assert status == 413 and "over the size" in doc["detail"], (status, doc)
        # Unknown routes and methods.
        assert s.request("GET", "/v2/nothing")[0] == 404
        assert s.request("PUT", "/v1/messages", MSG, key)[0] == 405
        assert s.request("GET", "/v1/messages/nope", key=key)[0] == 404
        status, _, body = s.request("GET", "/healthz")
        assert (status, body) == (200, "ok\n")
    finally:
        s.stop()
    # Every request was logged with the key's id and the message id, never the key.
    s.reader.join(5)
    kid, secret = key.split("_")[1], key.split("_")[2]
    assert not any(secret in line for line in s.log)
    stored = [x for x in s.log if "status=202" in x]
    assert len(stored) == 1 and ("key=%s id=%s" % (kid, qid)) in stored[0], stored
    assert any("status=400" in x and "key=" + kid in x for x in s.log)


@test(timeout=120)
def keys_scopes_rates_and_tenants():
    env = make_env()
    a = new_key(env, "--account", "main")
    b = new_key(env, "--account", "other")
    reader = new_key(env, "--account", "main", "--scope", "read")
    slow = new_key(env, "--account", "main", "--rate", "2/s")
    sender = new_key(env, "--account", "main", "--scope", "send")
    s = Serve(env, "--max-message-size", "200000")
    try:
        assert s.request("POST", "/v1/messages", MSG)[0] == 401
        # A wrong secret (the last character changed: "0" unless it already is one).
        wrong = a[:-1] + ("1" if a.endswith("0") else "0")
        status, hdrs, doc = s.request("POST", "/v1/messages", MSG, wrong)
        assert status == 401 and hdrs["WWW-Authenticate"].startswith("Bearer"), status
        assert s.request("POST", "/v1/messages", MSG, "garbage")[0] == 401
        status, _, doc = s.request("POST", "/v1/messages", MSG, a)
        assert status == 202, doc
        qid = doc["id"]
        # Another tenant's id is 404 on every route, exactly like a missing one.
        for method in ("GET", "DELETE"):
            status, _, doc = s.request(method, "/v1/messages/" + qid, key=b)
            assert status == 404 and doc["detail"] == "no such message", (method, doc)
        missing = "0" * 26
        assert s.request("GET", "/v1/messages/" + missing, key=a)[2]["detail"] == "no such message"
        # Scopes.
        assert s.request("POST", "/v1/messages", MSG, reader)[0] == 403
        assert s.request("DELETE", "/v1/messages/" + qid, key=reader)[0] == 403
        assert s.request("GET", "/v1/messages/" + qid, key=reader)[0] == 404  # not its message
        assert s.request("GET", "/v1/messages/" + qid, key=sender)[0] == 403
        assert s.request("DELETE", "/v1/messages/" + qid)[0] == 401
        batch = {"messages": [MSG]}
        assert s.request("POST", "/v1/messages/batch", batch)[0] == 401
        assert s.request("POST", "/v1/messages/batch", batch, reader)[0] == 403
        assert s.request("POST", "/v1/messages/batch", key=a, raw=b"x" * (1 << 20))[0] == 413
        # Rate: a burst over 2/s gets 429 with Retry-After.
        codes = [s.request("POST", "/v1/messages", MSG, slow) for _ in range(6)]
        assert [c[0] for c in codes].count(202) <= 3, [c[0] for c in codes]
        codes.append(s.request("POST", "/v1/messages/batch", {"messages": [MSG]}, slow))
        limited = [c for c in codes if c[0] == 429]
        assert codes[-1][0] == 429, codes[-1]
        assert limited and int(limited[0][1]["Retry-After"]) >= 1
        # Revocation takes effect within a couple of seconds.
        kid = a.split("_")[1]
        rc, out, err = harness.pigeon("key", "revoke", kid, env=env)
        assert rc == 0, err
        harness.wait_for(lambda: s.request("GET", "/v1/messages/" + qid, key=a)[0] == 401,
                         timeout=6, what="revoked key refused")
        rc, out, _ = harness.pigeon("key", "list", env=env)
        assert (kid + "  revoked").encode() in out, out
        # The spool keeps no secret.
        if env.get("PIGEON_SPOOL"):
            dump = harness.pg_query(env["PIGEON_SPOOL"], "SELECT k::text FROM api_keys k")
        else:
            import sqlite3
            db = sqlite3.connect(os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db"))
            dump = "\n".join(db.iterdump())
            db.close()
        for k in (a, b, reader, slow):
            assert k.split("_")[2] not in dump
    finally:
        s.stop()


@test(timeout=60)
def idle_server_sleeps():
    """With no client, the server's threads wait for work: the HTTP loop checked its
    (connection-less) deadlines every 200 ms and the main thread ticked every 200 ms,
    13 wake-ups a second in all; now the HTTP loop waits for a connection and the main
    thread for a signal (or the watchdog), about 4 a second (the SMTP loop's and the
    committer's ticks). It still answers at once, and stops with status 0."""
    env = make_env()
    s = Serve(env, "--smtp-listen", "127.0.0.1:0")
    try:
        assert s.request("GET", "/healthz")[0] == 200
        time.sleep(1)  # that connection closed and every thread settled
        rate = harness.wakeups_per_second(s.proc.pid, 3)
        assert s.request("GET", "/healthz")[0] == 200
    finally:
        s.stop()
    assert rate < 9, "%.1f wake-ups a second while idle" % rate


@test(timeout=120)
def idempotency_batch_cancel():
    env = make_env()
    key = new_key(env, "--account", "main")
    s = Serve(env)
    try:
        h = {"Idempotency-Key": "order-42"}
        first = s.request("POST", "/v1/messages", MSG, key, headers=h)
        again = s.request("POST", "/v1/messages", MSG, key, headers=h)
        assert first[0] == again[0] == 202 and first[2]["id"] == again[2]["id"], (first, again)
        status, _, doc = s.request("POST", "/v1/messages", dict(MSG, subject="other"), key,
                                   headers=h)
        assert status == 409 and first[2]["id"] in doc["detail"], doc
        rc, out, _ = harness.pigeon("queue", "list", "--json", env=env)
        assert len(json.loads(out)) == 1
        # Batch: per-item results in order, bad items named by index.
        batch = {"messages": [MSG, dict(MSG, to=["bad"]), dict(MSG, subject="third")]}
        status, _, doc = s.request("POST", "/v1/messages/batch", batch, key)
        assert status == 200, doc
        res = doc["results"]
        assert [r["status"] for r in res] == [202, 400, 202], res
        assert res[1]["detail"].startswith("/messages/1/to/0"), res[1]
        assert s.request("POST", "/v1/messages/batch", {"messages": [MSG] * 1001}, key)[0] == 400
        assert s.request("POST", "/v1/messages/batch", {"messages": []}, key)[0] == 400
        # Cancel: 204, then its state says so; a second cancel conflicts.
        qid = res[2]["id"]
        assert s.request("DELETE", "/v1/messages/" + qid, key=key)[0] == 204
        status, _, doc = s.request("GET", "/v1/messages/" + qid, key=key)
        assert status == 200 and doc["state"] == "cancelled", doc
        assert s.request("DELETE", "/v1/messages/" + qid, key=key)[0] == 409
        rc, out, _ = harness.pigeon("queue", "list", "--json", env=env)
        assert qid not in out.decode()
    finally:
        s.stop()


@test(timeout=120)
def group_commit_under_concurrency():
    env = make_env()
    key = new_key(env, "--account", "main")
    s = Serve(env)
    ids, problems = [], []

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        try:
            for i in range(20):
                body = json.dumps(dict(MSG, subject="c%d-%d" % (n, i)))
                conn.request("POST", "/v1/messages", body,
                             {"Content-Type": "application/json", "Authorization": "Bearer " + key})
                r = conn.getresponse()
                data = r.read()
                if r.status != 202:
                    problems.append((r.status, data))
                else:
                    ids.append(json.loads(data)["id"])
        except Exception as e:  # reported below
            problems.append(e)
        finally:
            conn.close()
    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not problems, problems[:3]
        assert len(ids) == len(set(ids)) == 64 * 20
        rc, out, _ = harness.pigeon("queue", "list", "--json", env=env)
        assert sorted(m["queue_id"] for m in json.loads(out)) == sorted(ids)
        status, _, text = s.request("GET", "/metrics")
        commits = float(re.search(r"^pigeon_spool_commits_total (\S+)$", text, re.M).group(1))
        assert 1 <= commits < len(ids), commits  # commits were shared
        n = re.search(r'^pigeon_http_requests_total\{route="/v1/messages",status="202"\} (\S+)$',
                      text, re.M)
        assert n and float(n.group(1)) == len(ids), n
        assert 'pigeon_http_request_duration_seconds_bucket{route="/v1/messages"' in text
    finally:
        s.stop()


@test(timeout=60)
def tls_and_keep_alive():
    env = make_env()
    key = new_key(env, "--account", "main")
    leaf = pki.get().localhost
    ctx = ssl.create_default_context(cafile=leaf.ca)
    ctx.check_hostname = False
    s = Serve(env, "--tls-cert", leaf.chain, "--tls-key", leaf.key, tls=ctx)
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=ctx, timeout=10)
        for i in range(3):
            conn.request("POST", "/v1/messages", json.dumps(MSG),
                         {"Content-Type": "application/json", "Authorization": "Bearer " + key})
            r = conn.getresponse()
            assert r.status == 202, r.read()
            r.read()
        conn.close()
        assert s.request("GET", "/healthz")[0] == 200
    finally:
        s.stop()


@test(timeout=60)
def max_queued_gives_503():
    env = make_env()
    key = new_key(env, "--account", "main")
    s = Serve(env, "--max-queued", "2")
    try:
        codes = [s.request("POST", "/v1/messages", MSG, key) for _ in range(4)]
        assert [c[0] for c in codes[:2]] == [202, 202], codes
        assert codes[3][0] == 503 and int(codes[3][1]["Retry-After"]) >= 1, codes[3]
    finally:
        s.stop()


@test(timeout=90)
def submitted_message_is_delivered_by_the_daemon():
    with servers.AioSmtpd() as smtpd:
        env = make_env(smtpd.port)
        key = new_key(env, "--account", "main")
        s = Serve(env)
        try:
            status, _, doc = s.request("POST", "/v1/messages", dict(MSG, to="ann@example.org"),
                                       key)
            assert status == 202
        finally:
            s.stop()
        rc, out, err = harness.pigeon("daemon", "--once", "--workers", "1", env=env, timeout=60)
        assert rc == 0, (rc, err)
        got = smtpd.wait_messages(1)
        assert got[0].rcpt_tos == ["ann@example.org"], got[0]
        assert got[0].message["Subject"] == "Order 42"


@test
def every_recipient_suppressed_gives_422():
    """The suppression list (tests/integration/test_suppress.py has the rest)."""
    env = make_env()
    key = new_key(env, "--account", "main")
    rc, out, err = harness.pigeon("suppress", "add", "ann@example.org", "--account", "main",
                                  env=env)
    assert rc == 0, err
    s = Serve(env)
    try:
        status, _, doc = s.request("POST", "/v1/messages", MSG, key)
        assert status == 422 and "ann@example.org" in doc["detail"], (status, doc)
    finally:
        s.stop()


@test
def openapi_documents_exactly_what_was_seen():
    import yaml
    with open(os.path.join(harness.source_dir(), "docs", "openapi.yaml")) as f:
        spec = yaml.safe_load(f)
    assert spec["openapi"].startswith("3.1"), spec["openapi"]
    documented = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "delete", "patch", "head"):
                for code in op["responses"]:
                    documented.add((method.upper(), path, int(code)))
    missing = documented - SEEN
    undocumented = {x for x in SEEN if x not in documented}
    assert not missing, "documented but never exercised: %s" % sorted(missing)
    assert not undocumented, "answered but not documented: %s" % sorted(undocumented)


if __name__ == "__main__":
    harness.run()
