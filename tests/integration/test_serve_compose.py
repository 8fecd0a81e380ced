#!/usr/bin/python3
"""`pigeon serve` JSON messages with markdown, template vars and send_at (issue 10), read
back from the spool with Python's email package: the Markdown rendered to HTML (a real
table, styles inlined) with the Markdown as the text part; {{vars}} expanded in subject,
text and HTML (HTML-escaped there, refused with a line break in the subject, a missing
one named); send_at in RFC 3339 makes the message due then and not before (`pigeon
daemon --once` leaves it alone), and bad dates are 400 naming /send_at.
"""
import email
import email.policy
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
from harness import test  # noqa: E402
from servetool import Serve, make_env, new_key  # noqa: E402


def stored(env, qid):
    spool = os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db")
    db = sqlite3.connect(spool)
    rows = db.execute("SELECT b.data FROM body b JOIN message m ON m.id = b.msg "
                      "WHERE m.queue_id = ? ORDER BY b.seq", (qid,)).fetchall()
    db.close()
    return email.message_from_bytes(b"".join(r[0] for r in rows), policy=email.policy.default)


def show(env, qid):
    rc, out, err = harness.pigeon("queue", "show", qid, "--json", env=env)
    assert rc == 0, (rc, err)
    return json.loads(out)


BASE = {"from": "App <app@shop.test>", "to": ["ann@example.org"]}


@test(timeout=90)
def markdown_and_vars_compose_like_pigeon_send():
    env = make_env()
    key = new_key(env, "--account", "main")
    s = Serve(env)
    try:
        md = "# Hello {{name}}\n\n| item | qty |\n|---|---|\n| {{item}} | {{qty}} |\n"
        status, _, doc = s.request("POST", "/v1/messages", dict(
            BASE, subject="Order for {{name}}", markdown=md,
            vars={"name": "Ann & Lee", "item": "tea", "qty": 2}), key)
        assert status == 202, doc
        msg = stored(env, doc["id"])
        assert msg["Subject"] == "Order for Ann & Lee"
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        assert "<table" in html and "<td" in html and "style=" in html, html
        assert "Hello Ann &amp; Lee" in html, html  # the HTML is escaped by the renderer
        assert "# Hello Ann & Lee" in text and "| tea | 2 |" in text, text
        status, _, doc = s.request("POST", "/v1/messages", dict(
            BASE, subject="Hi", html="<p>{{who}}</p>", text="Hi {{who}}",
            vars={"who": "<b>Bo</b>"}), key)
        assert status == 202, doc
        msg = stored(env, doc["id"])
        assert "&lt;b&gt;Bo&lt;/b&gt;" in msg.get_body(("html",)).get_content()
        assert msg.get_body(("plain",)).get_content().strip() == "Hi <b>Bo</b>"
        for body, where in (
                (dict(BASE, subject="Hi {{x}}", vars={"y": 1}), "/subject"),
                (dict(BASE, subject="Hi {{x}}", vars={"x": "a\r\nBcc: e@vil"}), "/subject"),
                (dict(BASE, subject="x", vars=[1]), "/vars"),
                (dict(BASE, subject="x", markdown="a", html="<p>b</p>"), "/markdown"),
                (dict(BASE, subject="x", text="{{#open}}"), None)):
            status, _, doc = s.request("POST", "/v1/messages", body, key)
            if where is None:  # without vars the text is not a template
                assert status == 202, doc
                continue
            assert status == 400 and doc["detail"].startswith(where), (body, doc)
    finally:
        s.stop()


@test(timeout=90)
def named_templates_from_the_templates_directory():
    env = make_env()
    key = new_key(env, "--account", "main")
    tdir = harness.tmpdir("pigeon-templates-")
    with open(os.path.join(tdir, "shipped.json"), "w") as f:
        json.dump({"subject": "Order {{order}} shipped", "text": "Hi {{name}},\nit is on its way.\n",
                   "html": "<p>Hi {{name}}</p>"}, f)
    with open(os.path.join(tdir, "broken.json"), "w") as f:
        f.write('{"subject": "x", "bcc": "e@vil.test"}')
    s = Serve(env, "--templates", tdir)
    try:
        status, _, doc = s.request("POST", "/v1/messages", dict(
            BASE, template="shipped", vars={"order": 42, "name": "<Ann>"}), key)
        assert status == 202, doc
        msg = stored(env, doc["id"])
        assert msg["Subject"] == "Order 42 shipped"
        text = msg.get_body(("plain",)).get_content()
        assert text.replace("\r\n", "\n") == "Hi <Ann>,\nit is on its way.\n", repr(text)
        assert "<p>Hi &lt;Ann&gt;</p>" in msg.get_body(("html",)).get_content()
        for body, status_want, where in (
                (dict(BASE, template="shipped", vars={"order": 1}), 400, "{{name}}"),
                (dict(BASE, template="shipped", subject="x", vars={}), 400, "/template"),
                (dict(BASE, template="nope", vars={}), 400, "/template"),
                (dict(BASE, template="../config", vars={}), 400, "/template"),
                (dict(BASE, template=".hidden", vars={}), 400, "/template"),
                (dict(BASE, template="broken", vars={}), 503, "/template")):
            status, _, doc = s.request("POST", "/v1/messages", body, key)
            assert status == status_want and where in doc["detail"], (body, status, doc)
    finally:
        s.stop()
    s = Serve(env)  # without --templates, a template is refused by name
    try:
        status, _, doc = s.request("POST", "/v1/messages", dict(BASE, template="shipped"), key)
        assert status == 400 and doc["detail"].startswith("/template"), doc
    finally:
        s.stop()


@test(timeout=90)
def send_at_schedules_and_bad_dates_are_named():
    with servers.AioSmtpd() as sink:
        env = make_env(sink.port)
        key = new_key(env, "--account", "main")
        # A spool of an older pigeon serve, whose api_messages has no send_at_ms yet: the
        # column is added on first use (no schema version involved).
        spool = os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db")
        db = sqlite3.connect(spool)
        if "send_at_ms" in [r[1] for r in db.execute("PRAGMA table_info(api_messages)")]:
            db.execute("ALTER TABLE api_messages DROP COLUMN send_at_ms")
            db.commit()
        db.close()
        s = Serve(env)
        try:
            later = dict(BASE, subject="later", text="x", send_at="2099-01-02T03:04:05+01:00")
            status, _, doc = s.request("POST", "/v1/messages", later, key)
            assert status == 202, doc
            later_id = doc["id"]
            # A real not-before time beside the real creation time (not the created time
            # moved to then): GET shows both.
            status, _, doc = s.request("GET", "/v1/messages/" + later_id, key=key)
            assert status == 200 and doc["send_at"] == "2099-01-02T02:04:05Z", doc
            assert doc["created"] < "2098" and doc["state"] == "queued", doc
            assert doc["recipients"][0]["next_attempt"] == "2099-01-02T02:04:05Z", doc
            status, _, doc = s.request("POST", "/v1/messages", dict(
                BASE, subject="past", text="x", send_at="2001-01-01T00:00:00.5Z"), key)
            assert status == 202, doc
            for bad in ("tomorrow", "2099-13-01T00:00:00Z", "2099-01-01T00:00:00",
                        "2099-01-01T00:00:00+1", 42):
                status, _, doc = s.request("POST", "/v1/messages",
                                           dict(BASE, subject="x", send_at=bad), key)
                assert status == 400 and doc["detail"].startswith("/send_at"), (bad, doc)
        finally:
            s.stop()
        entry = show(env, later_id)
        assert entry["next_attempt"].startswith("2099-01-02T02:04:05"), entry
        assert not entry["created"].startswith("2099"), entry
        rc, out, err = harness.pigeon("daemon", "--once", "--workers", "1", env=env, timeout=60)
        assert rc == 0, (rc, err)
        got = sink.wait_messages(1)
        assert [m.message["Subject"] for m in got] == ["past"], got
        assert show(env, later_id)["recipients"][0]["state"] == "queued"


if __name__ == "__main__":
    harness.run()
