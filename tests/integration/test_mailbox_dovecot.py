"""The IMAP and POP3 clients (lib/mailbox) against a real Dovecot (dovecot.py).

Driven through tests/integration/tool_mailbox.c. What a user would check: the Sent
folder is found by its \\Sent attribute (also under a Chinese name), an APPENDed message
comes back byte for byte and is \\Seen on disk, MOVE and delete change the maildir, POP3
returns the exact message (dot-unstuffed) over STLS and implicit TLS and DELE removes it,
a certificate from an unknown CA and a wrong password are refused with clear errors.
"""
import os
import threading
import time

import harness
import pki
import dovecot
from harness import test

_dc = []


def server():
    if not _dc:
        dc = dovecot.Dovecot(sent_name="已发送")
        dc.start()
        harness.at_exit(dc.stop)
        _dc.append(dc)
    return _dc[0]


def tool(*args, proto="imap", mode="implicit", port=None, ca=None, password=None, env=None):
    dc = server()
    if port is None:
        port = {("imap", "implicit"): dc.imaps_port, ("imap", "starttls"): dc.imap_port,
                ("pop3", "implicit"): dc.pop3s_port, ("pop3", "starttls"): dc.pop3_port}[
                    (proto, mode)]
    e = {"MAILBOX_PASSWORD": dc.password if password is None else password,
         "MAILBOX_VERBOSE": "1"}
    if env:
        e.update(env)
    argv = [harness.build_tool("mailbox"), proto, "127.0.0.1", str(port), mode,
            ca or pki.get().ca, dc.user] + list(args)
    rc, out, err = harness.run_cmd(argv, env=e, timeout=30)
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def ok(*args, **kw):
    rc, out, err = tool(*args, **kw)
    assert rc == 0, "tool %s failed:\n%s" % (args, err[-3000:])
    return out, err


def message(subject, body=b"hello\r\n"):
    return (b"From: Sender <sender@example.test>\r\nTo: r@example.test\r\n"
            b"Subject: " + subject.encode() + b"\r\nMessage-ID: <" +
            subject.encode() + b"@example.test>\r\n\r\n" + body)


def write(data):
    path = os.path.join(harness.tmpdir(), "m.eml")
    with open(path, "wb") as f:
        f.write(data)
    return path


@test
def list_finds_sent_by_special_use_under_a_chinese_name():
    out, err = ok("special", "\\Sent")
    assert out.strip() == "已发送", out
    # On the wire the name is modified UTF-7 (RFC 3501 5.1.3), never raw UTF-8.
    assert "&XfJT0ZAB-" in err, err
    out, _ = ok("list")
    names = {line.split("\t")[0]: line.split("\t")[1] for line in out.splitlines()}
    assert names["已发送"] == "\\Sent" and "INBOX" in names and names["Junk"] == "\\Junk", names


@test
def append_and_fetch_round_trip_exact_bytes():
    # 8-bit text, a line that is a lone dot, a line starting with dots, a long line and
    # a body big enough to be streamed in many chunks.
    body = ("中文正文\r\n.\r\n..two dots\r\n" + "x" * 5000 + "\r\n").encode()
    body += b"".join(b"line %07d of the big part\r\n" % i for i in range(60000))
    raw = message("roundtrip", body)
    out, err = ok("append", "已发送", "\\Seen", write(raw), mode="starttls")
    uid = out.strip()
    assert uid.isdigit() and int(uid) > 0, out
    assert "{%d+}" % len(raw) in err, "LITERAL+ not used: " + err[-2000:]
    dest = os.path.join(harness.tmpdir(), "fetched.eml")
    out, _ = ok("fetch", "已发送", uid, dest)
    with open(dest, "rb") as f:
        got = f.read()
    assert got == raw, "fetched %d bytes, appended %d" % (len(got), len(raw))
    stored = [m for m in server().messages("已发送") if b"Subject: roundtrip" in m[2]]
    assert len(stored) == 1 and "S" in stored[0][1], stored and stored[0][:2]


@test
def fetch_of_a_missing_uid_is_not_found():
    rc, out, err = tool("fetch", "INBOX", "999999", os.path.join(harness.tmpdir(), "x"))
    assert rc == 1 and "PIGEON_ERR_NOTFOUND" in err, err[-1500:]


@test
def search_move_and_delete():
    dc = server()
    dc.deliver(message("to-move"))
    dc.deliver(message("to-delete"))
    out, _ = ok("search", "INBOX", "ALL")
    uids = [int(x) for x in out.split()]
    assert len(uids) >= 2, out
    # Find which UID is which by fetching.
    which = {}
    for uid in uids:
        dest = os.path.join(harness.tmpdir(), "f.eml")
        ok("fetch", "INBOX", str(uid), dest)
        with open(dest, "rb") as f:
            data = f.read()
        for s in (b"to-move", b"to-delete"):
            if b"Subject: " + s + b"\r\n" in data:
                which[s] = uid
    out, err = ok("move", "INBOX", str(which[b"to-move"]), "Junk")
    assert "UID MOVE" in err or "UID COPY" in err, err
    junk = [m for m in dc.messages("Junk") if b"Subject: to-move" in m[2]]
    assert len(junk) == 1, dc.messages("Junk")
    ok("delete", "INBOX", str(which[b"to-delete"]))
    inbox = [m for m in dc.messages("INBOX") if b"Subject: to-delete" in m[2] or
             b"Subject: to-move" in m[2]]
    assert inbox == [], inbox


@test
def move_to_a_missing_folder_is_not_found():
    dc = server()
    dc.deliver(message("stays"))
    out, _ = ok("search", "INBOX", "ALL")
    uid = out.split()[-1]
    rc, out, err = tool("move", "INBOX", uid, "No Such Folder")
    assert rc == 1 and ("PIGEON_ERR_NOTFOUND" in err or "PIGEON_ERR_REJECTED" in err), err


@test
def pop3_retr_and_dele_over_stls_and_implicit_tls():
    dc = server()
    # Empty the inbox first (other tests put mail there), over POP3 itself.
    for mode in ("implicit", "starttls"):
        body = b".starts with a dot\r\n..two\r\n.\r\nend\r\n"
        raw = message("pop-" + mode, body)
        dc.deliver(raw)
        out, err = ok("uidl", proto="pop3", mode=mode)
        lines = [line.split() for line in out.splitlines()]
        assert lines, out
        if mode == "starttls":
            assert "C: STLS" in err and "TLS" in err, err
        found = None
        for number, _uid in lines:
            dest = os.path.join(harness.tmpdir(), "p.eml")
            ok("retr", number, dest, proto="pop3", mode=mode)
            with open(dest, "rb") as f:
                got = f.read()
            if b"Subject: pop-" + mode.encode() in got:
                found = number
                assert got == raw, (got, raw)
        assert found is not None
        out, err = ok("dele", found, proto="pop3", mode=mode)
        assert "PASS [redacted]" in err and dc.password not in err, err
        left = [m for m in dc.messages("INBOX") if b"Subject: pop-" + mode.encode() in m[2]]
        assert left == [], left


@test
def certificate_from_an_unknown_ca_is_refused():
    other = pki.get().other_ca
    for proto in ("imap", "pop3"):
        for mode in ("implicit", "starttls"):
            rc, out, err = tool("list" if proto == "imap" else "stat", proto=proto, mode=mode,
                                ca=other)
            assert rc == 1 and "PIGEON_ERR_TLS" in err, (proto, mode, err[-1500:])
            assert "certificate" in err.lower(), err[-1500:]
            sent = [line for line in err.splitlines() if line.startswith("C: ")]
            assert not any("LOGIN" in c or "PASS" in c or "AUTHENTICATE" in c or "USER" in c
                           for c in sent), sent


@test
def wrong_password_is_an_auth_error_and_never_shown():
    for proto in ("imap", "pop3"):
        rc, out, err = tool("list" if proto == "imap" else "stat", proto=proto,
                            password="not the password")
        assert rc == 1 and "PIGEON_ERR_AUTH" in err, err[-1500:]
        assert "not the password" not in err, err


@test
def imap_login_command_is_masked():
    out, err = ok("list", env={"MAILBOX_AUTH": "login"})
    assert "LOGIN [redacted]" in err and server().password not in err, err


@test
def plaintext_login_is_refused():
    rc, out, err = tool("list", mode="none", port=server().imap_port)
    assert rc == 1 and "PIGEON_ERR_CONFIG" in err, err


@test
def idle_wakes_up_when_mail_arrives():
    dc = server()

    def later():
        time.sleep(1.0)
        dc.deliver(message("idle-wakeup"))

    t = threading.Thread(target=later)
    t.start()
    start = time.monotonic()
    out, err = ok("idle", "INBOX", "8000")
    t.join()
    assert out.strip() == "changed 1", (out, err[-2000:])
    assert "C: DONE" in err, err


if __name__ == "__main__":
    harness.run()
