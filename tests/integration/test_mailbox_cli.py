"""`pigeon send --save-sent` and `pigeon bounces fetch` against a real Dovecot and a test
SMTP server (aiosmtpd).

What a user checks: the copy in Sent is the exact message the SMTP server received (plus
the Bcc field, in the copy only) and is \\Seen; a failure to save is a warning and exit 0;
a bounce about a message we sent is found in the inbox, its address suppressed, and the
next send skips it; a forged bounce (about a message we never sent) suppresses nothing.
"""
import os
import json
import signal
import subprocess

import harness
import pki
import servers
import dovecot
from harness import test

_dc = []


def server():
    if not _dc:
        dc = dovecot.Dovecot()
        dc.start()
        harness.at_exit(dc.stop)
        _dc.append(dc)
    return _dc[0]


def config(smtp_port, extra="", top=""):
    dc = server()
    d = harness.tmpdir("cfg")
    path = os.path.join(d, "pigeon.conf")
    with open(path, "w") as f:
        f.write(top + """[account test]
host = 127.0.0.1
port = {smtp}
tls = none
auth = none
from = Sender <{user}>
user = {user}
ca_file = {ca}
imap_host = 127.0.0.1
imap_port = {imap}
pop3_host = 127.0.0.1
pop3_port = {pop3}
{extra}
""".format(smtp=smtp_port, user=dc.user, ca=pki.get().ca, imap=dc.imap_port,
           pop3=dc.pop3_port, extra=extra))
    os.chmod(path, 0o600)
    spool = os.path.join(d, "spool.db")
    env = {"PIGEON_CONFIG": path, "PIGEON_PASSWORD": dc.password,
           "XDG_CONFIG_HOME": harness.tmpdir("xdg"), "XDG_STATE_HOME": d,
           "HOME": harness.tmpdir("home")}
    return env, spool


def sent_copies(subject):
    dc = server()
    return [m for m in dc.messages("Sent") if ("Subject: " + subject).encode() in m[2]]


@test
def save_sent_files_the_exact_bytes_with_bcc_and_seen():
    with servers.AioSmtpd() as smtp:
        env, _ = config(smtp.port)
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "to@example.test",
                                      "--bcc", "hidden@example.test", "--subject", "saved-1",
                                      "--text", "body ünïcode\n.leading dot\n", "--save-sent",
                                      "-v", env=env)
        assert rc == 0, err.decode(errors="replace")[-3000:]
        [m] = smtp.wait_messages(1)
        assert "hidden@example.test" in m.rcpt_tos
        assert b"hidden@example.test" not in m.content
        [(name, flags, data)] = sent_copies("saved-1")
        assert "S" in flags, name
        data = data.replace(b"\n", b"\r\n")
        assert data.startswith(b"Bcc: hidden@example.test\r\n"), data[:200]
        assert data[len(b"Bcc: hidden@example.test\r\n"):] == m.content, (data[:300], m.content[:300])
        text = err.decode(errors="replace")
        assert "APPEND" in text and server().password not in text, text[-2000:]


@test
def save_sent_from_the_account_setting_to_a_named_folder():
    with servers.AioSmtpd() as smtp:
        env, _ = config(smtp.port, "save_sent = Junk")
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "to@example.test",
                                      "--subject", "saved-2", "--text", "x\n", env=env)
        assert rc == 0, err
        smtp.wait_messages(1)
        junk = [m for m in server().messages("Junk") if b"Subject: saved-2" in m[2]]
        assert len(junk) == 1 and "S" in junk[0][1], junk


@test
def a_failure_to_save_is_a_warning_and_no_resend():
    with servers.AioSmtpd() as smtp:
        env, _ = config(smtp.port, "imap_port = %d" % harness.free_port())
        # imap_port appears twice: the later line (a closed port) wins.
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "to@example.test",
                                      "--subject", "saved-3", "--text", "x\n", "--save-sent",
                                      env=env)
        text = err.decode(errors="replace")
        assert rc == 0, text
        assert "warning" in text and "no copy was saved" in text, text
        assert len(smtp.wait_messages(1)) == 1
        assert sent_copies("saved-3") == []


@test
def wrong_imap_password_for_bounces_fetch_is_exit_77():
    with servers.AioSmtpd() as smtp:
        env, _ = config(smtp.port)
        env["PIGEON_PASSWORD"] = "wrong password"
        rc, out, err = harness.pigeon("bounces", "fetch", "--account", "test", env=env)
        text = err.decode(errors="replace")
        assert rc == 77, (rc, text)
        assert "wrong password" not in text and "AUTHENTICATIONFAILED" in text, text


def dsn_about(msgid, rcpt, to_addr):
    return ("""From: Mail Delivery System <MAILER-DAEMON@mx.example.test>
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"
Message-ID: <dsn-{rand}@mx.example.test>

--B
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown

--B
Content-Type: text/rfc822-headers

From: {to}
To: {rcpt}
Subject: hello
Message-ID: {msgid}

--B--
""".format(to=to_addr, rcpt=rcpt, msgid=msgid, rand=os.urandom(4).hex())).encode()


@test
def the_whole_loop_send_bounce_fetch_suppress_skip():
    dc = server()
    with servers.AioSmtpd() as smtp:
        env, spool = config(smtp.port, "save_sent = yes")
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "gone@example.test",
                                      "--subject", "loop-1", "--text", "x\n", "--spool", spool,
                                      env=env)
        assert rc == 0, err
        [m] = smtp.wait_messages(1)
        msgid = m.message["Message-ID"]
        # A real bounce of that message, and a forged one about a message never sent.
        dc.deliver(dsn_about(msgid, "gone@example.test", dc.user))
        dc.deliver(dsn_about("<forged-1@example.test>", "victim@example.test", dc.user))
        rc, out, err = harness.pigeon("bounces", "fetch", "--account", "test", "--json",
                                      "--spool", spool, "--move", "Junk", env=env)
        text = err.decode(errors="replace")
        assert rc == 0, text
        records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        byrcpt = {r["rcpt"]: r for r in records}
        assert byrcpt["gone@example.test"]["matched"] is True, records
        assert byrcpt["gone@example.test"]["suppressed"] is True, records
        assert byrcpt["gone@example.test"]["class"] == "hard", records
        assert byrcpt.get("victim@example.test", {}).get("suppressed") is not True, records
        # The matched bounce left the inbox for Junk; the forged one stays.
        inbox = [x for x in dc.messages("INBOX") if b"Undelivered Mail" in x[2]]
        assert len(inbox) == 1 and b"victim@example.test" in inbox[0][2], inbox
        rc, out, err = harness.pigeon("suppress", "list", "--account", "test", "--spool",
                                      spool, env=env)
        assert b"gone@example.test" in out and b"victim@example.test" not in out, (out, err)
        # The next send skips the suppressed address and says so.
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "gone@example.test",
                                      "--to", "ok@example.test", "--subject", "loop-2",
                                      "--text", "x\n", "--spool", spool, env=env)
        assert rc == 0, err
        [m1, m2] = smtp.wait_messages(2)
        assert m2.rcpt_tos == ["ok@example.test"], m2.rcpt_tos
        assert b"gone@example.test" in err and b"suppressed" in err, err


@test(timeout=90)
def a_fetched_bounce_reaches_the_webhooks():
    """bounces fetch tells the application: a signed "bounced" event for the matched
    recipient, delivered by the daemon from the spool's outbox; the forged one tells none."""
    import hookrecv
    dc = server()
    secret_dir = harness.tmpdir("hooksecret")
    secret = os.path.join(secret_dir, "s")
    with open(secret, "w") as f:
        f.write("whsec_mailbox_test_0123456789\n")
    os.chmod(secret, 0o600)
    with servers.AioSmtpd() as smtp, \
            hookrecv.Receiver("whsec_mailbox_test_0123456789") as recv:
        top = "webhook = %s\nwebhook_secret_file = %s\nwebhook_retry_max = 1s\n" % (
            recv.url, secret)
        env, spool = config(smtp.port, "save_sent = yes", top=top)
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "hooked@example.test",
                                      "--subject", "hook-1", "--text", "x\n", "--spool", spool,
                                      env=env)
        assert rc == 0, err
        [m] = smtp.wait_messages(1)
        dc.deliver(dsn_about(m.message["Message-ID"], "hooked@example.test", dc.user))
        dc.deliver(dsn_about("<forged-2@example.test>", "victim2@example.test", dc.user))
        log = os.path.join(harness.tmpdir("hooklog"), "daemon.log")
        e = dict(os.environ)
        e.update({k: v for k, v in env.items() if v is not None})
        daemon = subprocess.Popen([harness.pigeon_path(), "daemon", "--spool", spool,
                                   "--log-file", log], env=e, start_new_session=True)
        try:
            # The daemon turns the outbox on at start; fetch once it has.
            harness.wait_for(lambda: os.path.exists(spool + "-webhooks.lock"), 20,
                             what="the daemon's webhook sender")
            rc, out, err = harness.pigeon("bounces", "fetch", "--account", "test", "--json",
                                          "--spool", spool, env=env)
            assert rc == 0, err
            harness.wait_for(lambda: any(ev.get("type") == "bounced"
                                         for ev in recv.snapshot()), 30,
                             what="the bounced event")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        bounced = [ev for ev in recv.snapshot() if ev.get("type") == "bounced"]
        assert [ev["recipient"] for ev in bounced] == ["hooked@example.test"], bounced
        assert recv.bad_signatures == 0


@test
def a_bounce_of_a_queued_message_matches_by_the_spool():
    dc = server()
    # One recipient accepted (it bounces later), one deferred: the message stays in the
    # spool (a message whose recipients are all done leaves it; then only the Sent folder
    # can vouch for it).
    with servers.AioSmtpd(reject_rcpt={"later@example.test": "451 4.3.0 try later"}) as smtp:
        env, spool = config(smtp.port)
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "queued@example.test",
                                      "--to", "later@example.test",
                                      "--subject", "queued-1", "--text", "x\n", "--queue",
                                      "--spool", spool, env=env)
        assert rc == 0, err
        rc, out, err = harness.pigeon("daemon", "--once", "--spool", spool, env=env, timeout=60)
        assert rc == 0, err
        [m] = smtp.wait_messages(1)
        dc.deliver(dsn_about(m.message["Message-ID"], "queued@example.test", dc.user))
        rc, out, err = harness.pigeon("bounces", "fetch", "--account", "test", "--json",
                                      "--spool", spool, env=env)
        assert rc == 0, err
        records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        hit = [r for r in records if r["rcpt"] == "queued@example.test"]
        assert hit and hit[0]["matched_by"] == "spool" and hit[0]["suppressed"], records
        # Read once: a second fetch does not read it again.
        rc, out, err = harness.pigeon("bounces", "fetch", "--account", "test", "--json",
                                      "--spool", spool, env=env)
        assert rc == 0 and b"queued@example.test" not in out, (out, err)


@test
def bounces_fetch_over_pop3_deletes_matched_bounces():
    dc = server()
    with servers.AioSmtpd() as smtp:
        env, spool = config(smtp.port, "save_sent = yes")
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "pop@example.test",
                                      "--subject", "pop-loop", "--text", "x\n", env=env)
        assert rc == 0, err
        [m] = smtp.wait_messages(1)
        dc.deliver(dsn_about(m.message["Message-ID"], "pop@example.test", dc.user))
        rc, out, err = harness.pigeon("bounces", "fetch", "--account", "test", "--pop3",
                                      "--delete", "--json", "--spool", spool, env=env)
        assert rc == 0, err
        records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        hit = [r for r in records if r["rcpt"] == "pop@example.test"]
        assert hit and hit[0]["suppressed"] is True, records
        left = [x for x in dc.messages("INBOX") if b"pop@example.test" in x[2]]
        assert left == [], left


def verp_tag(key, payload, domain):
    """The token tag documented in pigeon/bounce.h, computed independently."""
    import base64
    import hashlib
    import hmac
    msg = b"pigeon-verp1\0" + payload.lower().encode() + b"\0" + domain.lower().encode()
    return base64.b32encode(hmac.new(key, msg, hashlib.sha256).digest()).decode().lower()[:10]


@test
def a_valid_verp_token_matches_and_a_forged_one_does_not():
    dc = server()
    key = b"mailbox-test-verp-key-0123456789"
    with servers.AioSmtpd() as smtp:
        env, spool = config(smtp.port)
        keyfile = os.path.join(harness.tmpdir("verp"), "verp.key")
        with open(keyfile, "wb") as f:
            f.write(key + b"\n")
        good = "tester+vrp=example.test-%s@example.test" % verp_tag(key, "vrp=example.test",
                                                                    "example.test")
        forged = "tester+vrq=example.test-%s@example.test" % verp_tag(key, "vrp=example.test",
                                                                      "example.test")
        dc.deliver(dsn_about("<unknown-1@example.test>", "vrp@example.test", good))
        dc.deliver(dsn_about("<unknown-2@example.test>", "vrq@example.test", forged))
        rc, out, err = harness.pigeon("bounces", "fetch", "--account", "test", "--json",
                                      "--spool", spool, "--verp-key-file", keyfile, env=env)
        assert rc == 0, err
        records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        byrcpt = {r["rcpt"]: r for r in records}
        assert byrcpt["vrp@example.test"]["matched_by"] == "verp", records
        assert byrcpt["vrp@example.test"]["suppressed"] is True, records
        assert byrcpt["vrq@example.test"]["matched"] is False, records
        assert byrcpt["vrq@example.test"]["suppressed"] is False, records


@test
def the_daemon_checks_bounces_every_bounce_check():
    dc = server()
    with servers.AioSmtpd() as smtp:
        env, spool = config(smtp.port, "save_sent = yes\nbounce_check = 1m")
        rc, out, err = harness.pigeon("send", "--account", "test", "--to", "dmn@example.test",
                                      "--subject", "daemon-loop", "--text", "x\n", env=env)
        assert rc == 0, err
        [m] = smtp.wait_messages(1)
        dc.deliver(dsn_about(m.message["Message-ID"], "dmn@example.test", dc.user))
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--spool", spool], env=env)

        def suppressed():
            rc, out, err = harness.pigeon("suppress", "list", "--account", "test", "--spool",
                                          spool, env=env)
            return b"dmn@example.test" in out

        try:
            harness.wait_for(suppressed, timeout=30, what="the daemon's bounce check")
        finally:
            harness.stop(proc)
        log = harness.read_log(proc)
        assert '"bounces"' in log and '"suppressed":1' in log, log[-2000:]


if __name__ == "__main__":
    harness.run()
