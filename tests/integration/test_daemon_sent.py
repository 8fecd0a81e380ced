"""The daemon's copy in Sent (save_sent = yes) against a real Dovecot and aiosmtpd.

What a user checks: after `pigeon daemon` delivers a queued message, the Sent folder holds
the exact bytes the SMTP server received (DKIM-Signature included), \\Seen, with a Bcc field
naming the Bcc recipients in this copy only; when the IMAP server cannot be reached the
failure is logged, the copy waits in the outbox and is filed by a later run, and the
message is never sent again; an account without save_sent leaves no outbox behind.
"""
import json
import os

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


def dkim_key():
    d = harness.tmpdir("dkimkey")
    path = os.path.join(d, "ed.pem")
    rc, out, err = harness.pigeon("dkim", "keygen", "--domain", "example.test", "--selector",
                                  "ed1", "--type", "ed25519", "--out", path)
    assert rc == 0, err
    return path


def config(smtp_port, extra=""):
    dc = server()
    d = harness.tmpdir("dsentcfg")
    path = os.path.join(d, "pigeon.conf")
    with open(path, "w") as f:
        f.write("""[account test]
host = 127.0.0.1
port = {smtp}
tls = none
auth = none
from = Sender <{user}>
user = {user}
ca_file = {ca}
imap_host = 127.0.0.1
imap_port = {imap}
{extra}
""".format(smtp=smtp_port, user=dc.user, ca=pki.get().ca, imap=dc.imap_port, extra=extra))
    os.chmod(path, 0o600)
    env = {"PIGEON_CONFIG": path, "PIGEON_PASSWORD": dc.password,
           "XDG_CONFIG_HOME": harness.tmpdir("xdg"), "XDG_STATE_HOME": d,
           "HOME": harness.tmpdir("home")}
    return env, os.path.join(d, "spool.db"), path


def queue(env, spool, subject, *extra):
    rc, out, err = harness.pigeon("send", "--account", "test", "--queue", "--to",
                                  "to@far.test", "--cc", "Carl <cc@far.test>", "--bcc",
                                  "hidden@far.test", "--subject", subject, "--text",
                                  "body\n.dot line\n", "--spool", spool, *extra, env=env)
    assert rc == 0, err


def daemon_once(env, spool):
    log = os.path.join(harness.tmpdir("dlog"), "log.json")
    rc, out, err = harness.pigeon("daemon", "--once", "--spool", spool, "--log-file", log,
                                  env=env, timeout=60)
    assert rc == 0, err
    with open(log) as f:
        return [json.loads(line) for line in f if line.strip()]


def copies(folder, subject):
    return [m for m in server().messages(folder) if ("Subject: " + subject).encode() in m[2]]


def outbox(spool):
    d = spool + ".sent"
    return sorted(os.listdir(d)) if os.path.isdir(d) else None


@test(timeout=90)
def the_daemon_files_the_exact_bytes_sent_with_dkim_and_bcc():
    key = dkim_key()
    with servers.AioSmtpd() as smtp:
        env, spool, _ = config(smtp.port, "save_sent = yes\ndkim_key = %s\ndkim_selector = ed1\n"
                                          "dkim_domain = example.test" % key)
        queue(env, spool, "dsent-1")
        events = daemon_once(env, spool)
        [m] = smtp.wait_messages(1)
    assert sorted(m.rcpt_tos) == ["cc@far.test", "hidden@far.test", "to@far.test"]
    assert b"DKIM-Signature:" in m.content and b"hidden@far.test" not in m.content
    [(name, flags, data)] = copies("Sent", "dsent-1")
    assert "S" in flags, (name, flags)
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    bcc = b"Bcc: hidden@far.test\r\n"
    assert data.startswith(bcc), data[:200]
    assert data[len(bcc):] == m.content, (data[:400], m.content[:400])
    saved = [e for e in events if e.get("event") == "sent_copy"]
    assert len(saved) == 1 and saved[0]["status"] == "saved", events
    assert outbox(spool) == [], outbox(spool)


@test(timeout=90)
def a_failed_save_is_logged_kept_and_filed_later_never_a_resend():
    with servers.AioSmtpd() as smtp:
        env, spool, path = config(smtp.port, "save_sent = Junk\nimap_port = %d" %
                                  harness.free_port())
        queue(env, spool, "dsent-2")
        events = daemon_once(env, spool)
        smtp.wait_messages(1)
        failed = [e for e in events if e.get("event") == "sent_copy"]
        assert failed and failed[0]["status"] == "not_saved" and failed[0]["error"], events
        assert any(e.get("result") == "delivered" for e in events), events
        kept = outbox(spool)
        assert kept is not None and len([n for n in kept if n.endswith(".eml")]) == 1, kept
        assert copies("Junk", "dsent-2") == []
        # The IMAP server is back (the second imap_port line goes): the next run files it.
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write("\n".join(x for x in text.splitlines()
                              if x != "imap_port = %d" % int(text.split("imap_port = ")[2]
                                                                 .split()[0])) + "\n")
        events = daemon_once(env, spool)
        assert [e["status"] for e in events if e.get("event") == "sent_copy"] == ["saved"], \
            events
        junk = copies("Junk", "dsent-2")
        assert len(junk) == 1 and "S" in junk[0][1], junk
        assert outbox(spool) == []
        assert len(smtp.messages) == 1  # saved late, never sent again


@test(timeout=60)
def without_save_sent_the_daemon_keeps_no_copy():
    with servers.AioSmtpd() as smtp:
        env, spool, _ = config(smtp.port)
        queue(env, spool, "dsent-3")
        events = daemon_once(env, spool)
        smtp.wait_messages(1)
    assert outbox(spool) is None
    assert not [e for e in events if e.get("event") == "sent_copy"]
    assert copies("Sent", "dsent-3") == []


@test(timeout=90)
def the_merge_files_each_delivered_row_with_save_sent():
    with servers.AioSmtpd() as smtp:
        smtp.reject_rcpt["nobody@far.test"] = "550 5.1.1 no such user"
        env, spool, _ = config(smtp.port)
        lst = os.path.join(harness.tmpdir("mlist"), "list.csv")
        with open(lst, "w") as f:
            f.write("email,name\nr1@far.test,Ann\nnobody@far.test,Nobody\nr2@far.test,Bob\n")
        rc, out, err = harness.pigeon("send", "--account", "test", "--to-file", lst,
                                      "--subject", "mrg-{{name}}", "--bcc", "audit@far.test",
                                      "--text", "hi {{name}}\n", "--save-sent", "--spool",
                                      spool, env=env)
        assert rc == 69, (rc, err)
        got = smtp.wait_messages(3)
    assert sorted(r for m in got for r in m.rcpt_tos if r != "audit@far.test") == \
        ["r1@far.test", "r2@far.test"], got
    for m in got:
        name = m.message["Subject"]
        [(fname, flags, data)] = copies("Sent", name)
        assert "S" in flags, flags
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        bcc = b"Bcc: audit@far.test\r\n"
        assert data.startswith(bcc) and data[len(bcc):] == m.content, (data[:300], m.content[:300])
    # The refused row still reached its Bcc recipient: partly delivered, so filed once.
    assert len(copies("Sent", "mrg-Nobody")) == 1


if __name__ == "__main__":
    harness.run()
