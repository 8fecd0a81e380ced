"""VERP sending (`pigeon send --verp`, the mail merge, the daemon) against real servers:
Postfix smtp-sink (PIPELINING, each transaction dumped with its MAIL FROM), aiosmtpd
(refusing one recipient) and Dovecot for the whole loop.

What a user checks: each recipient's transaction has its own envelope sender
user+<token>@domain whose tag an independent HMAC (Python's hmac) verifies, the From
header is unchanged, per-recipient outcomes are right, PIPELINING is still used; a bounce
that names no recipient but comes back to the VERP address is matched to the right
recipient by `bounces fetch` and suppresses it; a forged tag suppresses nothing.
"""
import base64
import hashlib
import hmac
import json
import os
import re

import harness
import pki
import servers
import dovecot
from harness import test

KEY = b"verp-test-key-0123456789abcdef!!"
_dc = []


def verp_tag(key, payload, domain):
    """The tag documented in pigeon/bounce.h, computed independently."""
    msg = b"pigeon-verp1\0" + payload.lower().encode() + b"\0" + domain.lower().encode()
    return base64.b32encode(hmac.new(key, msg, hashlib.sha256).digest()).decode().lower()[:10]


def verp_of(sender, rcpt, key=KEY):
    local, domain = sender.split("@")
    payload = rcpt.replace("@", "=")
    return "%s+%s-%s@%s" % (local, payload, verp_tag(key, payload, domain), domain)


def keyfile():
    path = os.path.join(harness.tmpdir("verpkey"), "verp.key")
    with open(path, "wb") as f:
        f.write(KEY + b"\n")
    os.chmod(path, 0o600)
    return path


def config(port, extra="", mailbox=False):
    d = harness.tmpdir("verpcfg")
    path = os.path.join(d, "pigeon.conf")
    user = "tester@example.test"
    lines = ["[account test]", "host = 127.0.0.1", "port = %d" % port, "tls = none",
             "auth = none", "from = Sender <%s>" % user]
    if mailbox:
        dc = dovecot_server()
        lines += ["user = %s" % dc.user, "ca_file = %s" % pki.get().ca,
                  "imap_host = 127.0.0.1", "imap_port = %d" % dc.imap_port]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra + "\n")
    os.chmod(path, 0o600)
    env = {"PIGEON_CONFIG": path, "XDG_CONFIG_HOME": harness.tmpdir("xdg"),
           "XDG_STATE_HOME": d, "HOME": harness.tmpdir("home")}
    if mailbox:
        env["PIGEON_PASSWORD"] = dovecot_server().password
    return env, os.path.join(d, "spool.db")


def dovecot_server():
    if not _dc:
        dc = dovecot.Dovecot()
        dc.start()
        harness.at_exit(dc.stop)
        _dc.append(dc)
    return _dc[0]


def transcript(err):
    """(direction, text) of each C:/S: line of a -v transcript."""
    out = []
    for line in err.decode(errors="replace").splitlines():
        m = re.match(r"^\S+ (C|S): (.*)$", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


@test
def send_verp_one_transaction_per_recipient_pipelined_on_smtp_sink():
    kf = keyfile()
    with servers.SmtpSink() as sink:
        env, _ = config(sink.port)
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "a@one.test",
                                      "--cc", "b@two.test", "--bcc", "c@three.test",
                                      "--subject", "verp-1", "--text", "hello\n.dot\n",
                                      "--verp", "--verp-key-file", kf, "-v", env=env)
        assert rc == 0, err.decode(errors="replace")[-3000:]
        got = sink.wait_messages(3)
    bysender = {m.mail_from: m for m in got}
    for rcpt in ("a@one.test", "b@two.test", "c@three.test"):
        m = bysender.get(verp_of("tester@example.test", rcpt))
        assert m is not None, ([x.mail_from for x in got], rcpt)
        assert m.rcpt_tos == [rcpt], m.rcpt_tos
        msg = m.message
        assert msg["From"] == "Sender <tester@example.test>", msg["From"]
        assert b"c@three.test" not in m.content
        assert m.content.rstrip().endswith(b".dot"), m.content[-100:]
    assert len({m.message["Message-ID"] for m in got}) == 1
    # PIPELINING: each end of data goes out with the next recipient's RSET, MAIL, RCPT and
    # DATA, before the reply to the dot is read.
    t = transcript(err)
    dots = [i for i, x in enumerate(t) if x == ("C", ".")]
    assert len(dots) == 3, t
    for i in dots[:2]:
        after = t[i + 1:i + 5]
        assert [d for d, _ in after] == ["C", "C", "C", "C"], after
        assert after[0][1] == "RSET" and after[1][1].startswith("MAIL FROM:<tester+"), after


@test
def verp_keeps_per_recipient_outcomes_on_aiosmtpd():
    kf = keyfile()
    with servers.AioSmtpd() as smtp:
        smtp.reject_rcpt["bad@two.test"] = "550 5.1.1 no such user"
        env, _ = config(smtp.port, "verp = yes\nverp_key_file = %s" % kf)
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "ok@one.test",
                                      "--to", "bad@two.test", "--to", "ok2@three.test",
                                      "--subject", "verp-2", "--text", "x\n", "--json",
                                      env=env)
        assert rc == 69, (rc, err)
        got = smtp.wait_messages(2)
    res = json.loads(out)
    status = {r["address"]: r["status"] for r in res["recipients"]}
    assert status == {"ok@one.test": "accepted", "bad@two.test": "rejected",
                      "ok2@three.test": "accepted"}, res
    assert sorted(m.mail_from for m in got) == sorted(
        [verp_of("tester@example.test", "ok@one.test"),
         verp_of("tester@example.test", "ok2@three.test")]), got
    assert all(len(m.rcpt_tos) == 1 for m in got)


@test
def verp_without_a_key_is_a_configuration_error_and_sends_nothing():
    with servers.AioSmtpd() as smtp:
        env, _ = config(smtp.port, "verp = yes")
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "a@one.test",
                                      "--subject", "verp-3", "--text", "x\n", env=env)
        assert rc == 78 and b"verp_key_file" in err, (rc, err)
        short = os.path.join(harness.tmpdir("short"), "k")
        with open(short, "wb") as f:
            f.write(b"too short\n")
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "a@one.test",
                                      "--subject", "verp-3", "--text", "x\n", "--verp",
                                      "--verp-key-file", short, env=env)
        assert rc == 78 and b"shorter than 16" in err, (rc, err)
        assert smtp.messages == []


@test
def the_merge_and_the_daemon_send_with_verp():
    kf = keyfile()
    with servers.SmtpSink() as sink:
        env, spool = config(sink.port, "verp = yes\nverp_key_file = %s" % kf)
        lst = os.path.join(harness.tmpdir("list"), "list.csv")
        with open(lst, "w") as f:
            f.write("email,name\nm1@one.test,One\nm2@two.test,Two\n")
        rc, out, err = harness.pigeon("send", "--account", "test", "--to-file", lst,
                                      "--subject", "hi {{name}}", "--text", "x\n", env=env)
        assert rc == 0, err
        rc, out, err = harness.pigeon("send", "--account", "test", "--queue", "--to",
                                      "q1@one.test", "--to", "q2@two.test", "--subject",
                                      "queued", "--text", "x\n", "--spool", spool, env=env)
        assert rc == 0, err
        rc, out, err = harness.pigeon("daemon", "--once", "--spool", spool, "--log-file",
                                      os.path.join(harness.tmpdir("log"), "log"), env=env)
        assert rc == 0, err
        got = sink.wait_messages(4)
    senders = {m.rcpt_tos[0]: m.mail_from for m in got}
    assert all(len(m.rcpt_tos) == 1 for m in got), got
    for rcpt in ("m1@one.test", "m2@two.test", "q1@one.test", "q2@two.test"):
        assert senders[rcpt] == verp_of("tester@example.test", rcpt), senders


def bounce_naming_nobody(to_addr):
    """A bounce whose body names no recipient and quotes no header: only the address it
    came back to (the VERP sender) tells whom it is about."""
    return ("""Return-Path: <>
Delivered-To: {to}
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.far.test>
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <nb-{rand}@mx.far.test>
Content-Type: text/plain

This is the mail system at host mx.far.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

Remote server said: 550 5.1.1 User unknown
""".format(to=to_addr, rand=os.urandom(4).hex())).encode()


@test(timeout=90)
def the_whole_loop_with_verp_matches_a_bounce_that_names_nobody():
    dc = dovecot_server()
    kf = keyfile()
    with servers.AioSmtpd() as smtp:
        env, spool = config(smtp.port, "verp = yes\nverp_key_file = %s" % kf, mailbox=True)
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "gone@far.test",
                                      "--to", "stays@far.test", "--subject", "loop-verp",
                                      "--text", "x\n", "--spool", spool, env=env)
        assert rc == 0, err
        got = smtp.wait_messages(2)
        sender_of = {m.rcpt_tos[0]: m.mail_from for m in got}
        gone = sender_of["gone@far.test"]
        assert gone == verp_of(dc.user, "gone@far.test"), sender_of
        # The bounce comes back to gone's VERP sender; a forged one claims "victim" with a
        # tag made for another address, another made with another key.
        dc.deliver(bounce_naming_nobody(gone))
        forged = gone.replace("gone=far.test", "victim=far.test")
        dc.deliver(bounce_naming_nobody(forged))
        dc.deliver(bounce_naming_nobody(verp_of(dc.user, "victim2@far.test",
                                                key=b"another-key-0123456789abcdef")))
        rc, out, err = harness.pigeon("bounces", "fetch", "--account", "test", "--json",
                                      "--spool", spool, env=env)
        assert rc == 0, err.decode(errors="replace")
        records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        hits = [r for r in records if r.get("rcpt") == "gone@far.test"]
        assert len(hits) == 1 and hits[0]["matched_by"] == "verp", records
        assert hits[0]["suppressed"] is True and hits[0]["class"] == "hard", records
        assert not any(r.get("suppressed") for r in records if r.get("rcpt") != "gone@far.test")
        rc, out, err = harness.pigeon("suppress", "list", "--account", "test", "--spool",
                                      spool, env=env)
        assert b"gone@far.test" in out, out
        assert b"victim" not in out and b"stays@far.test" not in out, out
        # The next send skips it.
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "gone@far.test",
                                      "--to", "stays@far.test", "--subject", "loop-verp-2",
                                      "--text", "x\n", "--spool", spool, env=env)
        assert rc == 0, err
        got = smtp.wait_messages(3)
        assert got[2].rcpt_tos == ["stays@far.test"], got
        assert b"gone@far.test" in err and b"suppressed" in err, err


if __name__ == "__main__":
    harness.run()
