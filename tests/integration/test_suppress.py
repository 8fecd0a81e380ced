#!/usr/bin/python3
"""The suppression list (issue 13): `pigeon suppress` and every sending path skipping the
addresses on it, against aiosmtpd.

What a user checks: the sink never receives a suppressed recipient (RCPT TO as aiosmtpd
recorded it), the others still get the message, and the output names each suppressed
address and why: send (a warning line; 65 when all are; --ignore-suppression), sendmail
(sendmail_suppression = skip|ignore), the mail merge (the row reported "suppressed" in the
report and the summary), serve (202 listing them; 422 problem+json when all are) and the
daemon (a recipient suppressed after it was queued fails with "suppressed: ..." in
`pigeon queue show`, result "suppressed" in the event log, and is not sent). The
command's list, --json, check, remove, CSV import/export round trip, soft-bounce counting
from the account's settings, and its exit codes for bad input.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
from harness import test  # noqa: E402


def make_env(port=1, extra=""):
    d = harness.tmpdir("pigeon-suppress-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write("default_account = main\n[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Sender <sender@pigeon.test>\ntimeout = 10\n%s"
                "[account other]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Other <other@pigeon.test>\n" % (port, extra, port))
    os.chmod(cfg, 0o600)
    # On the PostgreSQL run (ctest integration/test_suppress_pg) a fresh database each.
    return harness.with_spool({"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"),
                               "HOME": d, "PIGEON_PASSWORD": None, "TZ": "UTC"}), d


def sup(env, *args, input=None):
    rc, out, err = harness.pigeon("suppress", *args, env=env, input=input)
    return rc, out.decode(), err.decode()


def listed(env, *args):
    rc, out, err = sup(env, "list", "--json", *args)
    assert rc == 0, (rc, err)
    return [json.loads(line) for line in out.splitlines()]


def all_rcpts(srv):
    return sorted(r for m in srv.messages for r in m.rcpt_tos)


@test
def command_add_list_check_remove_and_errors():
    env, d = make_env()
    assert sup(env, "list")[0] == 0  # no spool yet: an empty list, not an error
    rc, out, err = sup(env, "add", "Bob@Example.COM", "--account", "main", "--reason",
                       "hard-bounce", "--status", "5.1.1", "--diagnostic", "no such user")
    assert rc == 0 and "suppressed Bob@Example.COM" in out, (rc, out, err)
    assert sup(env, "add", "<all@example.net>")[0] == 0  # global, brackets stripped
    assert sup(env, "add", "user@BÜCHER.example", "--account", "main", "--reason",
               "unsubscribe")[0] == 0
    rows = listed(env)
    assert [(r["address"], r["account"], r["reason"]) for r in rows] == [
        ("all@example.net", "*", "manual"),
        ("Bob@example.com", "main", "hard-bounce"),
        ("user@xn--bcher-kva.example", "main", "unsubscribe")], rows
    assert rows[1]["status"] == "5.1.1" and rows[1]["diagnostic"] == "no such user"
    assert [r["address"] for r in listed(env, "--reason", "hard-bounce")] == ["Bob@example.com"]
    assert [r["address"] for r in listed(env, "--account", "*")] == ["all@example.net"]
    # check: case-insensitive local part, IDN in either form, global entries everywhere.
    rc, out, err = sup(env, "check", "bob@example.com", "ALL@example.NET", "ok@example.com",
                       "user@xn--bcher-kva.example", "--account", "main")
    assert rc == 1, (rc, out, err)
    lines = out.splitlines()
    assert lines[0].startswith("bob@example.com: suppressed (hard-bounce 5.1.1"), lines
    assert "global list" in lines[1] and lines[2] == "ok@example.com: ok", lines
    assert "unsubscribe" in lines[3], lines
    rc, out, err = sup(env, "check", "bob@example.com", "--account", "other")
    assert rc == 0 and "ok" in out, (rc, out, err)
    # Errors: bad address, unknown reason, not listed, unknown action.
    rc, out, err = sup(env, "add", "not an address")
    assert rc == 65 and "not an address" in err, (rc, err)
    rc, out, err = sup(env, "add", "a@b.example", "--reason", "bogus")
    assert rc == 64 and "--reason" in err, (rc, err)
    rc, out, err = sup(env, "remove", "nobody@example.com", "--account", "main")
    assert rc == 67 and "nobody@example.com" in err, (rc, err)
    rc, out, err = sup(env, "frobnicate")
    assert rc == 64, rc
    rc, out, err = sup(env, "remove", "BOB@example.com", "--account", "main")
    assert rc == 0, (rc, err)
    assert "Bob@example.com" not in [r["address"] for r in listed(env)]


@test
def import_export_round_trip_and_bad_files():
    env, d = make_env()
    csv = os.path.join(d, "in.csv")
    with open(csv, "w") as f:
        f.write("address,account,reason,status,diagnostic,queue_id,created\r\n"
                "a@example.com,main,complaint,,\"said \"\"spam\"\", twice\",,1790000000000\r\n"
                "# a comment\r\n\r\n"
                "b@example.com\r\n"
                "\"c@example.com\",other,hard-bounce,5.1.1,\"two\r\nlines\",,\r\n")
    rc, out, err = sup(env, "import", csv, "--reason", "unsubscribe")
    assert rc == 0 and "imported 3 entries" in out, (rc, out, err)
    rows = {r["address"]: r for r in listed(env)}
    assert rows["a@example.com"]["diagnostic"] == 'said "spam", twice', rows
    assert rows["a@example.com"]["created_ms"] == 1790000000000
    assert rows["b@example.com"]["reason"] == "unsubscribe" and rows["b@example.com"]["account"] == "*"
    assert rows["c@example.com"]["account"] == "other"
    exported = os.path.join(d, "out.csv")
    assert sup(env, "export", exported)[0] == 0
    env2, d2 = make_env()
    rc, out, err = sup(env2, "import", exported)
    assert rc == 0 and "imported 3" in out, (rc, out, err)
    assert listed(env2) == listed(env)
    # A bad line imports nothing and is named; a missing file is 66.
    bad = os.path.join(d, "bad.csv")
    with open(bad, "w") as f:
        f.write("x@example.com\ny@example.com,main,nonsense\n")
    rc, out, err = sup(env2, "import", bad)
    assert rc == 65 and "bad.csv:2" in err and "nothing imported" in err, (rc, err)
    assert "x@example.com" not in [r["address"] for r in listed(env2)]
    rc, out, err = sup(env2, "import", os.path.join(d, "missing.csv"))
    assert rc == 66, (rc, err)
    rc, out, err = sup(env2, "import", "-", input=b"\"unclosed@example.com\n")
    assert rc == 65 and "-:1" in err, (rc, err)


@test
def soft_bounces_suppress_after_the_accounts_limit():
    env, d = make_env(extra="soft_bounce_limit = 2\nsoft_bounce_days = 3\n")
    rc, out, err = sup(env, "add", "full@example.com", "--account", "main", "--reason", "soft")
    assert rc == 0 and "soft bounce recorded" in out and "after 2 within 3 days" in out, out
    assert listed(env) == []
    rc, out, err = sup(env, "add", "full@example.com", "--account", "main", "--reason", "soft")
    assert rc == 0 and "suppressed full@example.com" in out, out
    assert [r["reason"] for r in listed(env)] == ["soft-bounce"]


@test
def two_soft_bounces_at_the_same_instant_both_count():
    """Two soft bounces of one address recorded at the same moment through two handles
    (two connections to PostgreSQL) with a limit of 2: whichever runs first, the second
    counts it and the address is suppressed. Before the per-address row of times, the two
    statements counted under their own snapshots, missed each other, and most of the
    addresses stayed mailable after their second soft bounce."""
    env, d = make_env()
    spool = env.get("PIGEON_SPOOL") or os.path.join(d, "state", "pigeon", "spool.db")
    os.makedirs(os.path.join(d, "state", "pigeon"), exist_ok=True)
    rc, out, err = harness.run_cmd([harness.build_tool("softrace"), spool, "main", "40"],
                                   env=env, timeout=120)
    assert rc == 0 and "suppressed 40 of 40" in out.decode(), (rc, out, err)
    assert len(listed(env, "--account", "main")) == 40


@test
def send_drops_suppressed_recipients():
    with servers.AioSmtpd() as srv:
        env, d = make_env(srv.port)
        assert sup(env, "add", "gone@example.com", "--account", "main", "--reason",
                   "hard-bounce", "--status", "5.1.1")[0] == 0
        assert sup(env, "add", "hidden@example.com", "--account", "*", "--reason",
                   "complaint")[0] == 0
        assert sup(env, "add", "elsewhere@example.com", "--account", "other")[0] == 0
        rc, out, err = harness.pigeon(
            "send", "--to", "Ann <ann@example.com>, Gone <GONE@example.com>",
            "--cc", "elsewhere@example.com", "--bcc", "hidden@example.com",
            "--subject", "hi", "--text", "hello\n", env=env)
        err = err.decode()
        assert rc == 0, (rc, err)
        assert "GONE@example.com is suppressed (hard-bounce 5.1.1" in err, err
        assert "hidden@example.com is suppressed (complaint" in err and "global" in err, err
        assert "elsewhere" not in err, err
        srv.wait_messages(1)
        assert all_rcpts(srv) == ["ann@example.com", "elsewhere@example.com"], srv.messages
        # The headers are the author's: To still names Gone (only the envelope changed).
        assert "GONE@example.com" in srv.messages[0].message["To"]
        # Everyone suppressed: nothing is sent, 65, a clear message.
        rc, out, err = harness.pigeon("send", "--to", "gone@example.com", "--subject", "x",
                                      "--text", "x\n", env=env)
        assert rc == 65 and "every recipient is suppressed" in err.decode(), (rc, err)
        assert len(srv.messages) == 1
        # --ignore-suppression overrides; --queue drops them too.
        rc, out, err = harness.pigeon("send", "--to", "gone@example.com", "--subject", "x",
                                      "--text", "x\n", "--ignore-suppression", env=env)
        assert rc == 0, (rc, err)
        srv.wait_messages(2)
        assert srv.messages[1].rcpt_tos == ["gone@example.com"]
        rc, out, err = harness.pigeon("send", "--queue", "--json", "--to", "a2@example.com",
                                      "--to", "gone@example.com", "--subject", "q",
                                      "--text", "q\n", env=env)
        assert rc == 0 and b"gone@example.com is suppressed" in err, (rc, err)
        qid = json.loads(out)["queue_id"]
        rc, out, err = harness.pigeon("queue", "show", qid, "--json", env=env)
        assert [r["address"] for r in json.loads(out)["recipients"]] == ["a2@example.com"]


def sendmail_cfg(port, mode=None):
    env, d = make_env(port, extra="" if mode is None else "sendmail_suppression = %s\n" % mode)
    return env


@test
def sendmail_skips_unless_configured_to_ignore():
    msg = b"From: Sender <sender@pigeon.test>\nSubject: cron\n\nreport\n"
    with servers.AioSmtpd() as srv:
        env = sendmail_cfg(srv.port)
        assert sup(env, "add", "gone@example.com")[0] == 0
        rc, out, err = harness.pigeon("sendmail", "-i", "ann@example.com", "gone@example.com",
                                      input=msg, env=env)
        assert rc == 0, (rc, err)
        assert b"sendmail: gone@example.com is suppressed (manual" in err, err
        srv.wait_messages(1)
        assert srv.messages[0].rcpt_tos == ["ann@example.com"]
        rc, out, err = harness.pigeon("sendmail", "-i", "gone@example.com", input=msg, env=env)
        assert rc == 65 and b"every recipient is suppressed" in err, (rc, err)
        # sendmail_suppression = ignore: delivered as before.
        env2 = sendmail_cfg(srv.port, "ignore")
        env2["XDG_STATE_HOME"] = env["XDG_STATE_HOME"]
        if "PIGEON_SPOOL" in env:
            env2["PIGEON_SPOOL"] = env["PIGEON_SPOOL"]
        rc, out, err = harness.pigeon("sendmail", "-i", "gone@example.com", input=msg, env=env2)
        assert rc == 0 and b"suppressed" not in err, (rc, err)
        srv.wait_messages(2)
        assert srv.messages[1].rcpt_tos == ["gone@example.com"]
    env3 = sendmail_cfg(1, "bogus")
    rc, out, err = harness.pigeon("sendmail", "-i", "x@example.com", input=msg, env=env3)
    assert rc == 78 and b"sendmail_suppression" in err, (rc, err)


@test
def merge_reports_suppressed_rows():
    with servers.AioSmtpd() as srv:
        env, d = make_env(srv.port)
        assert sup(env, "add", "bob@example.com", "--account", "main", "--reason",
                   "unsubscribe")[0] == 0
        lst = os.path.join(d, "list.csv")
        with open(lst, "w") as f:
            f.write("email,name\nann@example.com,Ann\nBob@Example.com,Bob\ncarl@example.com,Carl\n")
        rep = os.path.join(d, "report.jsonl")
        rc, out, err = harness.pigeon("send", "--to-file", lst, "--subject", "Hi {{name}}",
                                      "--text", "Dear {{name}}\n", "--report", rep, env=env)
        assert rc == 0, (rc, out, err)
        assert b"sent 2 messages" in out and b"1 suppressed" in out, out
        assert b"merge: Bob@example.com is suppressed (unsubscribe" in err, err
        srv.wait_messages(2)
        assert all_rcpts(srv) == ["ann@example.com", "carl@example.com"]
        with open(rep) as f:
            report = [json.loads(line) for line in f]
        bob = [r for r in report if r["row"] == 2][0]
        assert bob["status"] == "suppressed" and "unsubscribe" in bob["error"], bob
        # --queue: the suppressed row is not queued either.
        rc, out, err = harness.pigeon("send", "--to-file", lst, "--subject", "Hi {{name}}",
                                      "--text", "Dear {{name}}\n", "--queue", env=env)
        assert rc == 0 and b"queued 2 messages" in out and b"1 suppressed" in out, (rc, out)


@test(timeout=90)
def serve_names_suppressed_recipients_and_refuses_all_suppressed():
    from servetool import Serve, new_key
    with servers.AioSmtpd() as srv:
        env, d = make_env(srv.port)
        key = new_key(env, "--account", "main")
        s = Serve(env)
        try:
            msg = {"from": "App <app@shop.test>", "subject": "Order", "text": "Thanks\n",
                   "to": ["ann@example.org", "Gone <gone@example.org>"]}
            status, _, doc = s.request("POST", "/v1/messages", msg, key)
            assert status == 202 and "suppressed" not in doc, (status, doc)
            # Added while serve runs: seen by the next request.
            assert sup(env, "add", "gone@example.org", "--account", "main", "--reason",
                       "hard-bounce", "--status", "5.1.1")[0] == 0
            status, _, doc = s.request("POST", "/v1/messages", msg, key)
            assert status == 202, (status, doc)
            assert doc["suppressed"] == [{"address": "gone@example.org", "reason": "hard-bounce",
                                          "status": "5.1.1", "global": False}], doc
            qid = doc["id"]
            status, _, doc = s.request("POST", "/v1/messages",
                                       dict(msg, to=["GONE@example.org"]), key)
            assert status == 422 and "gone@example.org" in doc["detail"].lower(), (status, doc)
            status, _, doc = s.request("POST", "/v1/messages/batch",
                                       {"messages": [msg, dict(msg, to="gone@example.org")]}, key)
            assert status == 200, doc
            r0, r1 = doc["results"]
            assert r0["status"] == 202 and r0["suppressed"][0]["address"] == "gone@example.org"
            assert r1["status"] == 422 and "hard-bounce" in r1["detail"], r1
        finally:
            s.stop()
        rc, out, err = harness.pigeon("queue", "show", qid, "--json", env=env)
        assert [r["address"] for r in json.loads(out)["recipients"]] == ["ann@example.org"]


@test(timeout=90)
def daemon_fails_recipients_suppressed_after_enqueue():
    with servers.AioSmtpd() as srv:
        env, d = make_env(srv.port)

        def enqueue(*rcpts):
            args = ["send", "--queue", "--json", "--subject", "q", "--text", "hello\n"]
            for r in rcpts:
                args += ["--to", r]
            rc, out, err = harness.pigeon(*args, env=env)
            assert rc == 0, (rc, err)
            return json.loads(out)["queue_id"]

        q1 = enqueue("ann@example.com", "bob@example.com")
        q2 = enqueue("bob@example.com")
        assert sup(env, "add", "BOB@example.com", "--account", "main", "--reason",
                   "complaint")[0] == 0
        log = os.path.join(d, "events.json")
        rc, out, err = harness.pigeon("daemon", "--once", "--workers", "1", "--log-file", log,
                                      env=env, timeout=60)
        assert rc == 0, (rc, err)
        srv.wait_messages(1)
        assert all_rcpts(srv) == ["ann@example.com"], srv.messages
        with open(log) as f:
            events = [json.loads(line) for line in f]
        sup_events = [e for e in events if e.get("event") == "delivery" and
                      e.get("result") == "suppressed"]
        assert sorted(e["queue_id"] for e in sup_events) == sorted([q1, q2]), events
        assert all(e["rcpt"] == "bob@example.com" and e["reason"] == "complaint"
                   for e in sup_events), sup_events
        for qid in (q1, q2):
            rc, out, err = harness.pigeon("queue", "show", qid, "--json", env=env)
            rcpts = {r["address"]: r for r in json.loads(out)["recipients"]}
            bob = rcpts["bob@example.com"]
            assert bob["state"] == "failed" and bob["text"].startswith("suppressed: complaint"), bob
        # Nothing is left to do: a second pass sends nothing.
        rc, out, err = harness.pigeon("daemon", "--once", "--workers", "1", env=env, timeout=60)
        assert rc == 0 and len(srv.messages) == 1


@test
def older_postgresql_schema_reads_as_an_empty_list():
    """A PostgreSQL spool an older pigeon left (schema 1, no suppression tables) is not
    migrated by a read-only open: list and check say nothing is suppressed (exit 0)
    instead of failing every send, and the first write migrates it."""
    env, d = make_env()
    if "PIGEON_SPOOL" not in env:
        return  # the SQLite run: its tables are created on first use
    assert sup(env, "add", "a@example.com")[0] == 0
    url = env["PIGEON_SPOOL"]
    harness.pg_query(url, "DROP TABLE suppression, suppression_soft, limits,"
                     " suppression_soft_times, hook_events, hook_sinks, hook_keys;"
                     " DROP SEQUENCE hook_event_id; DROP FUNCTION pigeon_hook_queued,"
                     " pigeon_hook_outcome, pigeon_hook_owner")
    harness.pg_query(url, "DELETE FROM schema_version WHERE version > 1")
    rc, out, err = sup(env, "list")
    assert rc == 0 and "older than this pigeon" in err, (rc, out, err)
    rc, out, err = sup(env, "check", "a@example.com")
    assert rc == 0 and "a@example.com: ok" in out, (rc, out, err)
    assert sup(env, "add", "b@example.com")[0] == 0
    assert [r["address"] for r in listed(env)] == ["b@example.com"]
    assert harness.pg_query(url, "SELECT max(version) FROM schema_version").strip() == "9"


if __name__ == "__main__":
    harness.run()
