"""DKIM signatures made by pigeon (issue 9), checked by two independent verifiers:
dkimpy (Debian python3-dkim) and mailauth (npm), each served the test keys instead of DNS.

Keys come from `pigeon dkim keygen` (RSA 2048 and Ed25519). Messages: `pigeon send
--dry-run` (what would go after DATA) over 8-bit text, a folded Subject, trailing blank
lines, an empty body, a CRLF-only body, List-Unsubscribe and a 20 MB attachment, under the
four canonicalizations; messages relayed by `pigeon sendmail` to aiosmtpd (bare LF input,
8-bit, no body); and a spooled message signed by `pigeon daemon` at delivery with a key
rotated after it was queued. A tampered header or body, or an added From, fails both
verifiers; a Received field added in transit does not. Configuration mistakes (a key
readable by others, a key that does not parse, a d= that does not cover the From domain)
exit 78 with the fix.
"""
import json
import os
import re
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
from harness import test  # noqa: E402

import dkim  # noqa: E402  (Debian python3-dkim)

DOMAIN = "example.com"
STATE = {}


def keys():
    """Two key pairs made by `pigeon dkim keygen`, and their DNS records."""
    if STATE:
        return STATE
    d = harness.tmpdir("pigeon-dkim-")
    records = {}
    for sel, typ in (("rsa1", "rsa"), ("ed1", "ed25519"), ("rsa2", "rsa")):
        path = os.path.join(d, sel + ".pem")
        rc, out, err = harness.pigeon("dkim", "keygen", "--domain", DOMAIN, "--selector", sel,
                                      "--type", typ, "--out", path)
        assert rc == 0, err
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        line = out.decode()
        assert line.startswith("%s._domainkey.%s. IN TXT (" % (sel, DOMAIN)), line
        strings = re.findall(r'"([^"]*)"', line)
        assert all(len(s) <= 255 for s in strings), strings
        if typ == "rsa":
            assert len(strings) == 2  # a 2048-bit p= is longer than one string
        records["%s._domainkey.%s" % (sel, DOMAIN)] = "".join(strings)
        STATE[sel] = path
    STATE["records"] = records
    STATE["dir"] = d
    rec = os.path.join(d, "records.json")
    with open(rec, "w") as f:
        json.dump(records, f)
    STATE["records_file"] = rec
    return STATE


def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    v = keys()["records"].get(n.rstrip("."))
    return v.encode() if v is not None else None


def dkimpy(msg):
    """dkimpy's verdict on each DKIM-Signature of msg, top down."""
    d = dkim.DKIM(msg)
    n = len([1 for name, _ in d.headers if name.lower() == b"dkim-signature"])
    out = []
    for i in range(n):
        try:
            out.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
        except dkim.ValidationError:  # a body hash mismatch is raised, not returned
            out.append(False)
    return out


def mailauth(paths):
    """mailauth's verdicts, one list per file."""
    node_modules = subprocess.run(
        [os.path.join(harness.source_dir(), "scripts", "npm-deps.sh")], check=True,
        capture_output=True, text=True).stdout.strip()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dkim_verify.js")
    rc, out, err = harness.run_cmd(["node", script, keys()["records_file"]] + list(paths),
                                   env={"NODE_PATH": node_modules}, timeout=120)
    assert rc == 0, err.decode()[-2000:]
    return [[r["result"] == "pass" for r in json.loads(line)]
            for line in out.decode().splitlines()]


def both_verify(msgs, expect=True, count=2):
    """Every message in msgs ({name: bytes}) verifies (or fails) with both verifiers."""
    d = harness.tmpdir("pigeon-dkim-msg-")
    paths = []
    for name, data in msgs.items():
        got = dkimpy(data)
        assert got == [expect] * count, (name, "dkimpy", got)
        p = os.path.join(d, re.sub(r"[^\w.-]", "_", name) + ".eml")
        with open(p, "wb") as f:
            f.write(data)
        paths.append(p)
    for name, got in zip(msgs, mailauth(paths)):
        assert got == [expect] * count, (name, "mailauth", got)


def dry_run(*args, canon="relaxed/relaxed", key=None, sel=None, expect_rc=0, env=None):
    k = keys()
    rc, out, err = harness.pigeon(
        "send", "--dry-run", "--from", "Joe <joe@%s>" % DOMAIN, "--to", "suzie@example.net",
        "--dkim-key", key or "%s,%s" % (k["rsa1"], k["ed1"]), "--dkim-selector",
        sel or "rsa1,ed1", "--dkim-canonicalization", canon, *args,
        env=dict({"PIGEON_CONFIG": "/dev/null"}, **(env or {})), timeout=120)
    assert rc == expect_rc, (rc, err)
    return out, err


VARIANTS = {
    "8bit": ["--subject", "Grüße — 月度报告", "--text", "naïve café\n直接\n"],
    "folded": ["--subject", "a long subject " * 12, "--text", "body\n"],
    "trailing-blank": ["--subject", "t", "--text", "line   \n\n\n\n"],
    "empty-body": ["--subject", "e", "--text", ""],
    "crlf-only": ["--subject", "c", "--text", "\r\n\r\n\r\n"],
    "unsubscribe": ["--subject", "u", "--text", "x\n", "--header",
                    "List-Unsubscribe: <https://example.com/u?id=1>", "--header",
                    "List-Unsubscribe-Post: List-Unsubscribe=One-Click"],
}


@test(timeout=180)
def every_variant_and_canonicalization_verifies():
    msgs = {}
    for canon in ("relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"):
        for name, args in VARIANTS.items():
            out, _ = dry_run(*args, canon=canon)
            assert out.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=%s;" % canon.encode())
            assert b"; l=" not in out and b" l=" not in out.split(b"\r\n\r\n")[0]
            msgs["%s-%s" % (name, canon)] = out
    both_verify(msgs)
    head = msgs["unsubscribe-relaxed/relaxed"].split(b"\r\n\r\n")[0].decode()
    h = re.search(r"h=([^;]*);", head.replace("\r\n", "")).group(1).replace(" ", "").split(":")
    # From, Subject and the List-Unsubscribe pair are listed once more than present.
    for name in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post"):
        assert h.count(name) == 2, (name, h)


@test(timeout=180)
def a_20mb_attachment_signs_and_verifies():
    d = harness.tmpdir("pigeon-dkim-big-")
    big = os.path.join(d, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(20 * 1024 * 1024))
    out, _ = dry_run("--subject", "big", "--text", "see attached\n", "--attach", big)
    assert len(out) > 27 * 1024 * 1024
    both_verify({"big": out})


@test(timeout=120)
def tampering_fails_and_transit_does_not():
    out, _ = dry_run("--subject", "Is dinner ready?", "--text", "Hi.\n\nWe lost the game.\n")
    both_verify({
        "subject": out.replace(b"Subject: Is dinner ready?", b"Subject: Is dinner ready!"),
        "body": out.replace(b"We lost", b"We won"),
        "second-from": out.replace(b"\r\nFrom: ", b"\r\nFrom: Mallory <m@evil.example>\r\nFrom: ", 1),
        "appended": out + b"P.S.\r\n",
    }, expect=False)
    both_verify({"received": b"Received: from relay by mx; Wed, 2 Dec 2026 10:00:00 +0000\r\n" + out})


@test(timeout=60)
def one_algorithm_or_the_other():
    k = keys()
    out, _ = dry_run("--subject", "ed", "--text", "x\n", key=k["ed1"], sel="ed1")
    assert out.count(b"DKIM-Signature:") == 1 and b"a=ed25519-sha256" in out
    both_verify({"ed": out}, count=1)
    out, _ = dry_run("--subject", "rsa", "--text", "x\n", "--dkim-algorithm", "rsa-sha256")
    assert out.count(b"DKIM-Signature:") == 1 and b"a=rsa-sha256" in out
    both_verify({"rsa-only": out}, count=1)


@test(timeout=60)
def configuration_mistakes_exit_78_with_the_fix():
    k = keys()
    loose = os.path.join(k["dir"], "loose.pem")
    with open(k["ed1"], "rb") as src, open(loose, "wb") as dst:
        dst.write(src.read())
    os.chmod(loose, 0o644)
    _, err = dry_run("--text", "x", key=loose, sel="ed1", expect_rc=78)
    assert b"chmod 600" in err, err
    bad = os.path.join(k["dir"], "bad.pem")
    with open(bad, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    os.chmod(bad, 0o600)
    _, err = dry_run("--text", "x", key=bad, sel="x", expect_rc=78)
    assert b"not usable" in err and b"keygen" in err, err
    _, err = dry_run("--text", "x", "--dkim-domain", "other.org", expect_rc=78)
    assert b"dkim_domain" in err and b"example.com" in err, err
    _, err = dry_run("--text", "x", sel="rsa1", expect_rc=78)  # two keys, one selector
    assert b"selector" in err, err
    # A parent of the From domain is a valid d= (relaxed alignment).
    rc, out, err = harness.pigeon(
        "send", "--dry-run", "--from", "a@mail.%s" % DOMAIN, "--to", "b@example.net",
        "--text", "x", "--dkim-key", k["ed1"], "--dkim-selector", "ed1", "--dkim-domain",
        DOMAIN, env={"PIGEON_CONFIG": "/dev/null"})
    assert rc == 0, err
    both_verify({"parent": out}, count=1)


def account_config(port, key, sel, extra=""):
    d = harness.tmpdir("pigeon-dkim-cfg-")
    path = os.path.join(d, "config")
    with open(path, "w") as f:
        f.write("default_account = main\n[account main]\nhost = 127.0.0.1\nport = %d\n"
                "tls = none\nfrom = Cron <cron@%s>\ntimeout = 5\ndkim_key = %s\n"
                "dkim_selector = %s\ndkim_domain = %s\n%s" % (port, DOMAIN, key, sel, DOMAIN,
                                                           extra))
    os.chmod(path, 0o600)
    return {"PIGEON_CONFIG": path, "XDG_STATE_HOME": os.path.join(d, "state"), "HOME": d,
            "PIGEON_PASSWORD": None, "TZ": "UTC"}


@test(timeout=120)
def sendmail_signs_what_it_relays():
    k = keys()
    inputs = {
        "lf": b"From: cron@example.com\nTo: root@example.net\nSubject: job\n\nline 1  \nline 2\n\n\n",
        "8bit": "From: cron@example.com\nSubject: Grüße\nTo: x@example.net\n\nnaïve\n".encode(),
        "no-body": b"From: cron@example.com\nTo: x@example.net\nSubject: nothing\n",
        "crlf": b"From: cron@example.com\r\nTo: x@example.net\r\nSubject: c\r\n\r\n\r\n\r\n",
    }
    with servers.AioSmtpd() as srv:
        for canon in ("relaxed/relaxed", "simple/simple"):
            env = account_config(srv.port, "%s,%s" % (k["rsa1"], k["ed1"]), "rsa1,ed1",
                                 "dkim_canonicalization = %s\n" % canon)
            for name, data in inputs.items():
                rc, out, err = harness.run_cmd([harness.pigeon_path(), "sendmail", "-i",
                                                "x@example.net"], input=data, env=env)
                assert rc == 0, (name, err)
        srv.wait_messages(2 * len(inputs))
        got = {"%d" % i: m.content for i, m in enumerate(srv.messages)}
    assert all(c.startswith(b"DKIM-Signature:") for c in got.values())
    both_verify(got)


@test(timeout=60)
def d_defaults_to_the_from_domain_not_the_envelope():
    """Without dkim_domain, d= is the From field's domain, even when -f names a bounce
    address elsewhere (DMARC aligns on From)."""
    k = keys()
    with servers.AioSmtpd() as srv:
        env = account_config(srv.port, k["ed1"], "ed1")
        with open(env["PIGEON_CONFIG"]) as f:
            cfg = f.read().replace("dkim_domain = %s\n" % DOMAIN, "")
        with open(env["PIGEON_CONFIG"], "w") as f:
            f.write(cfg)
        rc, out, err = harness.run_cmd(
            [harness.pigeon_path(), "sendmail", "-i", "-f", "bounces@bounce.example.net",
             "x@example.net"],
            input=b"From: News <news@%s>\nSubject: hi\n\nhello\n" % DOMAIN.encode(), env=env)
        assert rc == 0, err
        srv.wait_messages(1)
        content = srv.messages[0].content
    assert b"d=%s;" % DOMAIN.encode() in content, content[:400]
    both_verify({"from-domain": content}, count=1)


@test(timeout=120)
def daemon_signs_at_delivery_with_the_current_key():
    k = keys()
    with servers.AioSmtpd() as srv:
        env = account_config(srv.port, k["rsa1"], "rsa1")
        rc, out, err = harness.pigeon("send", "--queue", "--to", "x@example.net", "--subject",
                                      "queued", "--text", "hello\n", env=env)
        assert rc == 0, err
        # The key is rotated while the message waits: the new one signs it.
        with open(env["PIGEON_CONFIG"]) as f:
            cfg = f.read().replace(k["rsa1"], "%s,%s" % (k["rsa2"], k["ed1"]))
            cfg = cfg.replace("dkim_selector = rsa1", "dkim_selector = rsa2,ed1")
        with open(env["PIGEON_CONFIG"], "w") as f:
            f.write(cfg)
        log = os.path.join(harness.tmpdir("log"), "events.json")
        rc, out, err = harness.pigeon("daemon", "--once", "--log-file", log, env=env, timeout=60)
        assert rc == 0, err
        srv.wait_messages(1)
        content = srv.messages[0].content
    assert b"s=rsa2;" in content and b"s=ed1;" in content and b"s=rsa1;" not in content
    both_verify({"daemon": content})


@test(timeout=120)
def running_daemon_signs_with_a_key_rewritten_in_place():
    """The daemon keeps parsed keys between messages (by path, inode, size and times): a
    key file rewritten in place while it runs signs the next message at once."""
    k = keys()
    path = os.path.join(harness.tmpdir("pigeon-dkim-inplace-"), "k.pem")
    with open(k["rsa1"], "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    os.chmod(path, 0o600)
    old = time.time() - 3600  # settled: the daemon may cache it
    os.utime(path, (old, old))
    with servers.AioSmtpd() as srv:
        env = account_config(srv.port, path, "rsa1")
        log = os.path.join(harness.tmpdir("log"), "events.json")
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", "1", "--log-file",
                              log], env={a: b for a, b in env.items() if b is not None})
        try:
            for i in (1, 2):
                rc, out, err = harness.pigeon("send", "--queue", "--to", "x@example.net",
                                              "--subject", "m%d" % i, "--text", "hi\n", env=env)
                assert rc == 0, err
                srv.wait_messages(i, timeout=30)
            with open(k["rsa2"], "rb") as src, open(path, "r+b") as dst:  # same inode
                dst.write(src.read())
                dst.truncate()
            rc, out, err = harness.pigeon("send", "--queue", "--to", "x@example.net",
                                          "--subject", "m3", "--text", "hi\n", env=env)
            assert rc == 0, err
            srv.wait_messages(3, timeout=30)
        finally:
            proc.terminate()
            proc.wait(30)
        msgs = [m.content for m in srv.messages]
    assert all(b"s=rsa1;" in m for m in msgs), msgs
    records = keys()["records"]
    sel = "rsa1._domainkey.%s" % DOMAIN

    def verify(msg, record):
        try:
            return bool(dkim.DKIM(msg).verify(dnsfunc=lambda n, timeout=5: record.encode()))
        except dkim.ValidationError:
            return False
    assert [verify(m, records[sel]) for m in msgs] == [True, True, False]
    assert verify(msgs[2], records["rsa2._domainkey.%s" % DOMAIN])


@test(timeout=120)
def daemon_keeps_mail_when_the_key_is_unusable():
    """A key that became unreadable-by-policy (mode 644) after the message was queued:
    the daemon sends nothing unsigned, keeps the message deferred with the reason, and
    sends it signed once the key is fixed."""
    k = keys()
    loose = os.path.join(harness.tmpdir("pigeon-dkim-loose-"), "k.pem")
    with open(k["ed1"], "rb") as src, open(loose, "wb") as dst:
        dst.write(src.read())
    os.chmod(loose, 0o600)
    with servers.AioSmtpd() as srv:
        env = account_config(srv.port, loose, "ed1")
        rc, out, err = harness.pigeon("send", "--queue", "--json", "--to", "x@example.net",
                                      "--subject", "kept", "--text", "hello\n", env=env)
        assert rc == 0, err
        qid = json.loads(out)["queue_id"]
        os.chmod(loose, 0o644)
        log = os.path.join(harness.tmpdir("log"), "events.json")
        rc, _, err = harness.pigeon("daemon", "--once", "--log-file", log, env=env, timeout=60)
        assert rc == 0, err
        assert srv.messages == [], "sent without its signature"
        rc, out, err = harness.pigeon("queue", "show", qid, "--json", env=env)
        assert rc == 0, err
        [r] = json.loads(out)["recipients"]
        assert r["state"] == "deferred" and "chmod 600" in (r.get("text") or ""), r
        os.chmod(loose, 0o600)
        rc, _, err = harness.pigeon("queue", "retry", "--all", env=env)
        assert rc == 0, err
        rc, _, err = harness.pigeon("daemon", "--once", "--log-file", log, env=env, timeout=60)
        assert rc == 0, err
        srv.wait_messages(1)
        content = srv.messages[0].content
    both_verify({"fixed": content}, count=1)


if __name__ == "__main__":
    harness.run(timeout=180, file_timeout=290)
