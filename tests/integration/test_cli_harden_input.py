"""Issue 12, defects 5, 6 and 9: what `pigeon sendmail` lets through and what `pigeon queue
list` shows.

- sendmail never sends a message that breaks RFC 5322: a NUL anywhere, or a body line over
  998 octets, is refused with 65 naming the line, and nothing reaches the server; a header
  line over 998 octets is folded at white space (aiosmtpd receives lines of at most 998
  octets, and Python's email parser unfolds the field back to what was written), or
  refused with 65 when it has no white space; 100 KB of random bytes are refused.
- sendmail -t removes Resent-Bcc as it removes Bcc (the envelope keeps only -t's To, Cc,
  Bcc; the hidden address never appears in what the server receives).
- queue list shows the next attempt time, not the creation time, in its "next" column.
"""
import json
import os
import random
import re
import stat

import harness
import servers
from harness import test


def config_for(port):
    d = harness.tmpdir("harden-input-")
    path = os.path.join(d, "config")
    with open(path, "w") as f:
        f.write("[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = cron@example.com\ntimeout = 10\n" % port)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return {"PIGEON_CONFIG": path, "PIGEON_PASSWORD": None, "HOME": d,
            "XDG_STATE_HOME": os.path.join(d, "state")}


def sendmail(srv, *args, input):
    return harness.pigeon("sendmail", *args, input=input, env=config_for(srv.port))


def refused(srv, input, *says):
    rc, out, err = sendmail(srv, "-i", "to@example.org", input=input)
    assert rc == 65, (rc, err)
    for s in says:
        assert s in err, (s, err)
    assert len(err.splitlines()) == 1, err
    assert srv.messages == [], "sent despite the refusal"


@test
def nul_in_body_refused_65_naming_the_line():
    with servers.AioSmtpd() as srv:
        refused(srv, b"From: a@example.com\nSubject: s\n\nok\nbad \0 byte\n", b"line 5",
                b"NUL")


@test
def long_body_line_refused_65_naming_the_line():
    with servers.AioSmtpd() as srv:
        refused(srv, b"Subject: s\n\nshort\n" + b"x" * 999 + b"\n", b"line 4",
                b"longer than 998")
        # 998 octets exactly is fine.
        rc, out, err = sendmail(srv, "-i", "to@example.org",
                                input=b"Subject: s\n\n" + b"y" * 998 + b"\n")
        assert rc == 0, err
        [m] = srv.wait_messages(1)
        assert b"y" * 998 + b"\r\n" in m.content


@test
def random_bytes_refused():
    rnd = random.Random(12)
    blob = bytes(rnd.getrandbits(8) for _ in range(100 * 1024))
    with servers.AioSmtpd() as srv:
        rc, out, err = sendmail(srv, "-i", "to@example.org", input=blob)
        assert rc == 65, (rc, err)
        assert srv.messages == []


@test
def long_header_line_folded_at_white_space():
    words = " ".join("word%04d" % i for i in range(400))  # about 3,600 octets
    with servers.AioSmtpd() as srv:
        rc, out, err = sendmail(srv, "-i", "to@example.org",
                                input=("From: a@example.com\nSubject: %s\nX-Long: %s\n\nbody\n"
                                       % (words, words)).encode())
        assert rc == 0, err
        [m] = srv.wait_messages(1)
    lines = m.content.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998, max(len(line) for line in lines)
    msg = m.message
    assert re.sub(r"\s+", " ", str(msg["Subject"])) == words
    assert re.sub(r"\s+", " ", str(msg["X-Long"])) == words
    assert m.content.endswith(b"\r\n\r\nbody\r\n"), m.content[-40:]


@test
def long_header_line_without_white_space_refused():
    with servers.AioSmtpd() as srv:
        refused(srv, b"Subject: s\nX-Token: " + b"z" * 1200 + b"\n\nbody\n", b"X-Token",
                b"998")


@test
def t_removes_resent_bcc_like_bcc():
    msg = (b"From: a@example.com\nTo: to@example.org\nResent-From: r@example.com\n"
           b"Resent-To: again@example.org\nResent-Bcc: secret@example.net,\n"
           b" other-secret@example.net\nBcc: hidden@example.net\nSubject: s\n\nbody\n")
    with servers.AioSmtpd() as srv:
        rc, out, err = sendmail(srv, "-t", "-i", input=msg)
        assert rc == 0, err
        [m] = srv.wait_messages(1)
    head = m.content.split(b"\r\n\r\n", 1)[0].lower()
    assert b"secret" not in head and b"resent-bcc" not in head, head
    assert b"hidden" not in head and b"\r\nbcc:" not in head, head
    assert b"resent-to: again@example.org" in head, head
    assert "hidden@example.net" in m.rcpt_tos, m.rcpt_tos


@test
def queue_list_shows_next_attempt_not_creation():
    port = harness.free_port()  # nobody listens: the attempt is deferred
    env = config_for(port)
    rc, out, err = harness.pigeon("send", "--queue", "--json", "--to", "r@example.org",
                                  "--subject", "s", "--text", "t", env=env)
    assert rc == 0, err
    rc, out, err = harness.pigeon("daemon", "--once", "--log-file",
                                  os.path.join(env["HOME"], "log"), env=env, timeout=60)
    assert rc == 0, err
    rc, out, err = harness.pigeon("queue", "list", "--json", env=env)
    [entry] = json.loads(out)
    assert entry["next_attempt"] and entry["next_attempt"] != entry["created"], entry
    rc, out, err = harness.pigeon("queue", "list", env=env)
    assert rc == 0, err
    line = out.decode()
    assert ("next %s" % entry["next_attempt"]) in line, (line, entry)
    assert line.count(entry["created"]) == 1, line


if __name__ == "__main__":
    harness.run()
