"""Templates, mail merge and one-click unsubscribe (issues 8 and 9), against aiosmtpd.

What a user checks: each row of the list arrives as its own message to its own address,
with its own values in the subject and the bodies (read back with Python's email
parser); HTML values are escaped; bad rows are reported with their line numbers and
skipped (or stop everything with --strict); --queue puts every row in the spool, where
`pigeon queue list` shows them and the daemon delivers them; an interrupted run (SIGINT)
resumes from the report without sending a row twice; --dry-run writes a folder or an mbox
that Python's mailbox module reads back; List-Unsubscribe and List-Unsubscribe-Post
arrive as RFC 2369 / RFC 8058 say.
"""
import json
import mailbox
import os
import signal
import subprocess
import time

import harness
from harness import test
from servers import AioSmtpd


def make_env(port=1):
    d = harness.tmpdir("pigeon-merge-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write("[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Sender <sender@pigeon.test>\ntimeout = 10\n" % port)
    os.chmod(cfg, 0o600)
    return {"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"),
            "HOME": d, "PIGEON_PASSWORD": None}, d


def write(d, name, text, mode="w"):
    path = os.path.join(d, name)
    with open(path, mode) as f:
        f.write(text)
    return path


CSV = ("\ufeffemail,name,plan,code\r\n"
       "ann@example.com,Ann,gold,A1\r\n"
       "bob@example.com,\"Bob \"\"B\"\" <x>\",silver,\"B,2\"\r\n"
       "not-an-address,Nobody,none,N\r\n"
       "carl@example.com,Carl,,\"C\r\n3\"\r\n"
       "dora@example.com,Dora,gold\r\n")


def body(m, kind="plain"):
    """A text part's content with the line ends Python's parser keeps made LF."""
    part = m if kind is None else m.get_body((kind,))
    return part.get_content().replace("\r\n", "\n")


def report_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@test
def merge_sends_one_personal_message_per_row():
    with AioSmtpd() as srv:
        env, d = make_env(srv.port)
        lst = write(d, "list.csv", CSV, "w")
        html = write(d, "body.html", "<p>Hi {{name}}{{#plan}}, plan {{plan}}{{/plan}}"
                     "{{^plan}}, no plan{{/plan}}</p>\n")
        rep = os.path.join(d, "report.jsonl")
        rc, out, err = harness.pigeon(
            "send", "--to-file", lst, "--subject", "Hello {{name}} ({{company}})",
            "--text", "Dear {{name}},\ncode {{code}}\n", "--html-file", html,
            "--var", "company=ACME", "--report", rep,
            "--unsubscribe", "https://example.com/u?id={{code}}&n={{name}}",
            "--unsubscribe", "mailto:unsub@example.com?subject=unsub", env=env)
        err = err.decode()
        assert rc == 65, (rc, out, err)  # bad rows were skipped: data error overall
        assert b"sent 3 messages" in out and b"2 bad rows skipped" in out, out
        assert "list.csv line 4:" in err and "invalid address" in err, err
        assert "list.csv line 7:" in err and "2 fields" not in err, err
        srv.wait_messages(3)
        by_rcpt = {m.rcpt_tos[0]: m for m in srv.messages}
        assert sorted(by_rcpt) == ["ann@example.com", "bob@example.com", "carl@example.com"]
        ann = by_rcpt["ann@example.com"].message
        assert ann["Subject"] == "Hello Ann (ACME)", ann["Subject"]
        assert ann["To"].addresses[0].display_name == "Ann"
        assert body(ann) == "Dear Ann,\ncode A1\n"
        assert "<p>Hi Ann, plan gold</p>" in body(ann, "html")
        bob = by_rcpt["bob@example.com"].message
        assert bob["To"].addresses[0].display_name == 'Bob "B" <x>', str(bob["To"])
        # Escaped in the template; the HTML pipeline then re-serializes per HTML5 (13.3),
        # which writes a quote in text as is: what matters is that <x> is no tag.
        assert 'Hi Bob "B" &lt;x&gt;, plan silver' in body(bob, "html"), body(bob, "html")
        assert "code B,2" in body(bob)
        carl = by_rcpt["carl@example.com"].message
        assert "Hi Carl, no plan" in body(carl, "html")
        assert "code C\n3" in body(carl)
        # RFC 2369 / RFC 8058, per row; the value is percent-encoded in the URL.
        lu = bob["List-Unsubscribe"]
        assert lu == ("<https://example.com/u?id=B%2C2&n=Bob%20%22B%22%20%3Cx%3E>, "
                      "<mailto:unsub@example.com?subject=unsub>"), lu
        assert bob["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        lines = report_lines(rep)
        assert [(x["row"], x["line"], x["status"]) for x in lines] == [
            (1, 2, "sent"), (2, 3, "sent"), (3, 4, "invalid"), (4, 5, "sent"),
            (5, 7, "invalid")], lines
        assert lines[0]["code"] == 250 and lines[0]["message_id"] == ann["Message-ID"]
        assert "invalid address" in lines[2]["error"]


@test
def missing_variable_names_the_line_and_allow_missing_writes_nothing():
    env, d = make_env()
    text = write(d, "t.txt", "line one\nHello {{first}}\n")
    rc, out, err = harness.pigeon("send", "--from", "a@example.com", "--to", "b@example.com",
                                  "--subject", "s", "--text-file", text, "--var", "x=1",
                                  "--dry-run", env=env)
    assert rc == 65 and b"missing variable {{first}} at line 2" in err, (rc, err)
    rc, out, err = harness.pigeon("send", "--from", "a@example.com", "--to", "b@example.com",
                                  "--subject", "s", "--text-file", text, "--var", "x=1",
                                  "--allow-missing", "--dry-run", env=env)
    assert rc == 0, err
    assert body(harness.parse(out), None) == "line one\nHello \n"
    # A value never becomes a header line: refused, and nothing is written.
    rc, out, err = harness.pigeon("send", "--from", "a@example.com", "--to", "b@example.com",
                                  "--subject", "Hi {{n}}", "--text", "x",
                                  "--var", "n=x\r\nBcc: victim@example.com", "--dry-run",
                                  env=env)
    assert rc == 65 and out == b"" and b"line break" in err, (rc, out, err)
    # --vars: JSON with nested objects and lists; --var overrides it.
    js = write(d, "v.json", '{"user": {"name": "Zhang"}, "items": [{"n": "a"}, {"n": "b"}],'
               ' "who": "json"}')
    rc, out, err = harness.pigeon("send", "--from", "a@example.com", "--to", "b@example.com",
                                  "--subject", "{{user.name}} {{who}}",
                                  "--text", "{{#items}}[{{n}}]{{/items}}\n", "--vars", js,
                                  "--var", "who=cli", "--dry-run", env=env)
    assert rc == 0, err
    m = harness.parse(out)
    assert m["Subject"] == "Zhang cli" and body(m, None) == "[a][b]\n", (m["Subject"], out)
    bad = write(d, "bad.json", '{"a": 1,}')
    rc, out, err = harness.pigeon("send", "--from", "a@example.com", "--to", "b@example.com",
                                  "--text", "x", "--vars", bad, "--dry-run", env=env)
    assert rc == 65 and b"line 1" in err, (rc, err)


@test
def unsubscribe_is_validated():
    env, d = make_env()
    base = ["send", "--from", "a@example.com", "--to", "b@example.com", "--text", "x",
            "--dry-run"]
    for url in ("http://example.com/u", "https://example.com/a b", "https://e.com/<x>",
                "https://e.com/a,b", "javascript:alert(1)", "https://e.com/\r\nBcc: x@y"):
        rc, out, err = harness.pigeon(*base, "--unsubscribe", url, env=env)
        assert rc == 65 and out == b"", (url, rc, out, err)
    rc, out, err = harness.pigeon(*base, "--unsubscribe", "mailto:u@example.com", env=env)
    m = harness.parse(out)
    assert rc == 0 and m["List-Unsubscribe"] == "<mailto:u@example.com>", (rc, err)
    assert m["List-Unsubscribe-Post"] is None  # one-click needs https (RFC 8058 3.1)
    # A URL longer than a line is folded at the comma's space, never made an encoded-word
    # (RFC 2369 fields are structured: "=?UTF-8?Q?<https..." would break every client).
    long = "https://example.com/unsubscribe/" + "a" * 150 + "?id=1"
    mailto = "mailto:unsubscribe-list-address@lists.example.com?subject=unsubscribe"
    rc, out, err = harness.pigeon(*base, "--unsubscribe", long, "--unsubscribe", mailto,
                                  env=env)
    assert rc == 0 and b"=?" not in out, (rc, out, err)
    m = harness.parse(out)
    assert m["List-Unsubscribe"] == "<%s>, <%s>" % (long, mailto), m["List-Unsubscribe"]
    assert max(len(x) for x in out.split(b"\r\n")) < 998


@test
def a_list_without_an_email_column_stops_at_once():
    env, d = make_env()
    lst = write(d, "l.csv", "mail,name\na@example.com,A\nb@example.com,B\n")
    rc, out, err = harness.pigeon("send", "--to-file", lst, "--subject", "s", "--text", "x",
                                  "--dry-run", env=env)
    assert rc == 65 and err.count(b"no email column") == 1, (rc, err)


@test
def strict_sends_nothing_when_a_row_is_bad():
    with AioSmtpd() as srv:
        env, d = make_env(srv.port)
        lst = write(d, "list.csv", CSV)
        rc, out, err = harness.pigeon("send", "--to-file", lst, "--subject", "s {{name}}",
                                      "--text", "x", "--strict", env=env)
        assert rc == 65 and b"nothing was sent" in err, (rc, err)
        assert b"line 4" in err and b"line 7" in err, err
        time.sleep(0.3)
        assert srv.messages == []


@test
def jsonl_and_dry_run_folder_and_mbox():
    env, d = make_env()
    lst = write(d, "list.jsonl", '{"email": "a@example.com", "name": "张三", "n": 1}\n'
                '\n{"email": "b@example.com", "tags": ["x", "y"], "n": 2.50}\n'
                '{"email": "c@example.com"\n'
                '{"email": "d@example.com, evil@example.com"}\n'
                '{"email": "e@example.com\\r\\nBcc: evil@example.com"}\n')
    folder = os.path.join(d, "out")
    common = ["send", "--to-file", lst, "--subject", "#{{n}} {{name}}", "--allow-missing",
              "--text", "{{#tags}}<{{.}}>{{/tags}}\n", "--dry-run"]
    rc, out, err = harness.pigeon(*common, "--dry-run-dir", folder, env=env)
    assert rc == 65 and b"line 4" in err, (rc, err)
    assert b"line 5: invalid address" in err and b"line 6: invalid address" in err, err
    names = sorted(os.listdir(folder))
    assert names == ["000001.eml", "000002.eml"], names
    with open(os.path.join(folder, "000002.eml"), "rb") as f:
        m = harness.parse(f.read())
    assert m["Subject"] == "#2.5 " and body(m, None) == "<x><y>\n", (m["Subject"], m)
    box = os.path.join(d, "out.mbox")
    rc, out, err = harness.pigeon(*common, "--mbox", box, env=env)
    assert rc == 65, err
    msgs = list(mailbox.mbox(box))
    parsed = [harness.parse(x.as_bytes()) for x in msgs]
    assert [p["To"].addresses[0].addr_spec for p in parsed] == ["a@example.com",
                                                                "b@example.com"]
    assert parsed[0]["To"].addresses[0].display_name == "张三"
    assert harness.parse(msgs[0].as_bytes())["Subject"] == "#1 张三"


@test
def queue_puts_every_row_in_the_spool_and_the_daemon_delivers():
    with AioSmtpd() as srv:
        env, d = make_env(srv.port)
        rows = "".join("u%d@example.com,User %d\n" % (i, i) for i in range(50))
        lst = write(d, "list.csv", "email,name\n" + rows)
        rep = os.path.join(d, "r.jsonl")
        rc, out, err = harness.pigeon("send", "--queue", "--to-file", lst, "--subject",
                                      "Hi {{name}}", "--text", "x\n", "--report", rep, env=env)
        assert rc == 0 and b"queued 50 messages" in out, (rc, out, err)
        lines = report_lines(rep)
        assert len(lines) == 50 and all(x["status"] == "queued" and len(x["queue_id"]) == 26
                                        for x in lines)
        rc, out, err = harness.pigeon("queue", "list", "--json", env=env)
        listed = json.loads(out)
        assert sorted(x["queue_id"] for x in listed) == sorted(x["queue_id"] for x in lines)
        assert srv.messages == []
        log = os.path.join(d, "events.json")
        rc, out, err = harness.pigeon("daemon", "--once", "--log-file", log, env=env,
                                      timeout=60)
        assert rc == 0, err
        srv.wait_messages(50)
        got = sorted((m.rcpt_tos[0], m.message["Subject"]) for m in srv.messages)
        assert got == sorted(("u%d@example.com" % i, "Hi User %d" % i) for i in range(50))


@test(timeout=60)
def sigint_stops_cleanly_and_resume_sends_the_rest_once():
    with AioSmtpd() as srv:
        env, d = make_env(srv.port)
        n = 30
        lst = write(d, "list.csv", "email\n" + "".join("r%d@example.com\n" % i
                                                        for i in range(n)))
        rep = os.path.join(d, "r.jsonl")
        args = [harness.pigeon_path(), "send", "--to-file", lst, "--subject", "m {{email}}",
                "--text", "x\n", "--report", rep, "--rate", "20/s"]
        full = dict(os.environ)
        full.update({k: v for k, v in env.items() if v is not None})
        full.pop("PIGEON_PASSWORD", None)
        proc = subprocess.Popen(args, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        harness.wait_for(lambda: len(srv.messages) >= 5, 20, what="five messages")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, (proc.returncode, err)
        assert b"--resume" in err, err
        first = len(srv.messages)
        assert 5 <= first < n, first
        done = [x for x in report_lines(rep) if x["status"] == "sent"]
        assert len(done) == first, (len(done), first)
        proc = subprocess.run(args[:-2] + ["--resume"], env=full, capture_output=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert b"already done" in proc.stdout, proc.stdout
        srv.wait_messages(n)
        time.sleep(0.2)
        rcpts = sorted(m.rcpt_tos[0] for m in srv.messages)
        assert rcpts == sorted("r%d@example.com" % i for i in range(n)), rcpts
        assert len([x for x in report_lines(rep) if x["status"] == "sent"]) == n


def count_sessions(srv):
    """Records each EHLO's peer: one entry per SMTP session."""
    peers = []

    async def handle_EHLO(server, session, envelope, hostname, responses):
        peers.append(session.peer)
        session.host_name = hostname  # what aiosmtpd's own EHLO does, which a hook replaces
        return responses

    srv._controller.handler.handle_EHLO = handle_EHLO
    return peers


@test
def rejected_rows_are_reported_and_the_session_goes_on():
    with AioSmtpd(reject_rcpt={"no@example.com": "550 5.1.1 no such user"}) as srv:
        sessions = count_sessions(srv)
        env, d = make_env(srv.port)
        lst = write(d, "l.csv", "email\na@example.com\nno@example.com\nb@example.com\n")
        rep = os.path.join(d, "r.jsonl")
        rc, out, err = harness.pigeon("send", "--to-file", lst, "--subject", "s", "--text",
                                      "x", "--report", rep, "-v", env=env)
        assert rc == 69, (rc, err)
        assert err.count(b"C: MAIL FROM:<sender@pigeon.test>") == 3, err  # -v: the transcript
        srv.wait_messages(2)
        lines = report_lines(rep)
        assert [(x["address"], x["status"], x["code"]) for x in lines] == [
            ("a@example.com", "sent", 250), ("no@example.com", "failed", 550),
            ("b@example.com", "sent", 250)], lines
        assert b"l.csv line 3: no@example.com" in err, err
        assert len(sessions) == 1, sessions  # one connection for the whole list


@test
def templates_reach_html_and_markdown_through_the_html_pipeline():
    """A variable in --html-file is HTML-escaped before the inliner and the text part are
    made from it; in --markdown-file it is expanded before the Markdown is rendered, and the
    text part is the expanded Markdown."""
    env, d = make_env()
    html = write(d, "m.html", "<html><head><style>p{color:red}</style></head>"
                 "<body><p>Hi {{name}}</p></body></html>")
    rc, out, err = harness.pigeon("send", "--dry-run", "--to", "x@example.com", "--subject",
                                  "Hi {{name}}", "--html-file", html, "--var",
                                  "name=<Ann & Bob>", env=env)
    assert rc == 0, err
    m = harness.parse(out)
    h = body(m, "html")
    assert '<p style="color: red;">Hi &lt;Ann &amp; Bob&gt;</p>' in h, h
    assert "Hi <Ann & Bob>" in body(m, "plain"), body(m, "plain")
    assert m["Subject"] == "Hi <Ann & Bob>", m["Subject"]
    md = write(d, "m.md", "# Hello {{name}}\n\nYour code is **{{code}}**.\n")
    rc, out, err = harness.pigeon("send", "--dry-run", "--to", "x@example.com", "--subject", "s",
                                  "--markdown-file", md, "--var", "name=Ann", "--var",
                                  "code=A1", env=env)
    assert rc == 0, err
    m = harness.parse(out)
    assert "Hello Ann</h1>" in body(m, "html") and "<strong" in body(m, "html"), body(m, "html")
    assert body(m, "plain").startswith("# Hello Ann\n\nYour code is **A1**."), body(m, "plain")
    rc, out, err = harness.pigeon("send", "--dry-run", "--to", "x@example.com", "--subject", "s",
                                  "--markdown-file", md, "--var", "name=Ann", env=env)
    assert rc == 65 and b"code" in err, (rc, err)


if __name__ == "__main__":
    harness.run()
