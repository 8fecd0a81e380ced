"""The SMTP client against independent servers on loopback, with what arrived parsed
and compared with what was sent:

- aiosmtpd with STARTTLS and AUTH PLAIN / LOGIN on a test CA made by the test;
- the same server behind stunnel4 for implicit TLS (port-465 style);
- Postfix smtp-sink for PIPELINING (MAIL, every RCPT and DATA in one write), 8BITMIME,
  DSN parameters, and several messages over one connection.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import pki  # noqa: E402
import servers  # noqa: E402
import smtptool  # noqa: E402
from harness import test  # noqa: E402

USERS = {"alice@example.test": "correct horse"}
SUBJECT = "Peers: 你好, world"
TEXT = "Hello Bob,\n.a line starting with a dot\n\n中文内容 and more.\n"


def check_received(m, to=("bob@example.test",)):
    """A received message matches what tool_smtp composed."""
    msg = m.message
    assert m.mail_from == "alice@example.test", m.mail_from
    assert list(m.rcpt_tos) == list(to), m.rcpt_tos
    assert msg["Subject"] == SUBJECT, msg["Subject"]
    assert msg["From"].addresses[0].addr_spec == "alice@example.test"
    body = msg.get_body(("plain",)).get_content()
    assert body.replace("\r\n", "\n") == TEXT, repr(body)


def send(port, *args, **kw):
    return smtptool.run(port, "--subject", SUBJECT, "--text", TEXT, *args, **kw)


@test
def aiosmtpd_starttls_auth_plain():
    p = pki.get()
    with servers.AioSmtpd(tls="starttls", auth=USERS, auth_mechs=("PLAIN", "LOGIN")) as srv:
        r = send(srv.port, "--tls", "starttls", "--ca-file", p.ca, "--user",
                 "alice@example.test", "--auth", "plain", host="localhost",
                 password="correct horse")
        [m] = srv.wait_messages(1)
    assert r.first["status"] == "sent", r
    assert r.json["auth_used"] == "PLAIN", r
    assert m.tls and m.auth_user == "alice@example.test", m.__dict__
    # Capabilities: STARTTLS before TLS (and no AUTH there), AUTH only after.
    assert r.json["caps_before_tls"]["starttls"] == 1, r
    assert r.json["caps_before_tls"]["auth"] == "", r
    assert "PLAIN" in r.json["caps"]["auth"], r
    check_received(m)
    assert "correct horse" not in r.transcript and "[redacted]" in r.transcript


@test
def aiosmtpd_starttls_auth_login():
    p = pki.get()
    with servers.AioSmtpd(tls="starttls", auth=USERS, auth_mechs=("LOGIN",)) as srv:
        r = send(srv.port, "--tls", "starttls", "--ca-file", p.ca, "--user",
                 "alice@example.test", host="localhost", password="correct horse")
        [m] = srv.wait_messages(1)
    assert r.first["status"] == "sent" and r.json["auth_used"] == "LOGIN", r
    assert srv.auth_attempts == [("LOGIN", "alice@example.test", "correct horse", True)]
    check_received(m)
    # Neither the user nor the password base64 appears in the transcript.
    assert "Y29ycmVjdCBob3JzZQ" not in r.transcript, r.transcript


@test
def aiosmtpd_wrong_password_is_auth_failure():
    p = pki.get()
    with servers.AioSmtpd(tls="starttls", auth=USERS) as srv:
        r = send(srv.port, "--tls", "starttls", "--ca-file", p.ca, "--user",
                 "alice@example.test", host="localhost", password="wrong")
    c = r.connect
    assert c["class"] == "auth" and c["code"] == 535 and c["stage"] == "auth", r
    assert c["temporary"] == 0 and c["hint"], r
    assert srv.messages == []
    assert "wrong" not in r.transcript.replace("wrong TLS", "")


@test
def aiosmtpd_qq_provider_hint_on_535():
    p = pki.get()
    with servers.AioSmtpd(tls="starttls", auth=USERS) as srv:
        r = send(srv.port, "--tls", "starttls", "--ca-file", p.ca, "--user",
                 "alice@example.test", "--provider", "qq", host="localhost",
                 password="qq-password")
    assert r.connect["class"] == "auth" and "授权码" in r.connect["hint"], r


@test
def stunnel_implicit_tls():
    p = pki.get()
    with servers.AioSmtpd(auth=USERS, require_tls_for_auth=False) as inner, \
            servers.Stunnel(connect_port=inner.port) as tls:
        r = send(tls.port, "--tls", "implicit", "--ca-file", p.ca, "--user",
                 "alice@example.test", host="localhost", password="correct horse",
                 to=["bob@example.test", "carol@example.test"])
        [m] = inner.wait_messages(1)
    assert r.first["status"] == "sent", r
    assert r.json["tls"]["active"] == 1 and r.json["tls"]["version"].startswith("TLSv1."), r
    check_received(m, to=("bob@example.test", "carol@example.test"))
    assert m.auth_user == "alice@example.test"


@test
def stunnel_tls10_only_refused():
    with servers.AioSmtpd() as inner, \
            servers.Stunnel(connect_port=inner.port, tls_max="TLSv1") as tls:
        r = send(tls.port, "--tls", "implicit", "--ca-file", pki.get().ca, host="localhost")
    c = r.connect
    assert c["class"] == "tls", r
    assert "TLS 1.0" in c["errmsg"] or "version" in c["errmsg"].lower(), r
    assert inner.messages == []


@test
def smtp_sink_pipelining_several_messages():
    rcpts = ["bob@example.test", "carol@example.test", "dave@example.test"]
    with servers.SmtpSink() as sink:
        r = send(sink.port, "--tls", "none", "--count", "3", "--8bit", to=rcpts)
        got = sink.wait_messages(3)
    assert [m["status"] for m in r.messages] == ["sent"] * 3, r
    assert r.json["caps"]["pipelining"] == 1
    for m in got:
        check_received(m, to=rcpts)
        assert m.proto == "ESMTP"
    # PIPELINING: the whole group (RSET, MAIL, each RCPT, DATA) is written before any
    # of its replies is read.
    lines = [l.split(" ", 2)[1:] for l in r.transcript.splitlines() if " C: " in l or " S: " in l]
    lines = [(d, t) for d, t in lines]
    first_reply = next(i for i, (d, t) in enumerate(lines) if d == "S:" and t.startswith("250 2.1.0"))
    sent_before = [t for d, t in lines[:first_reply] if d == "C:"]
    assert sent_before[-5:] == ["MAIL FROM:<alice@example.test> BODY=8BITMIME"] + \
        ["RCPT TO:<%s>" % a for a in rcpts] + ["DATA"], sent_before
    # 8-bit text went as 8BITMIME since it was asked for and smtp-sink offers it.
    assert "BODY=8BITMIME" in got[0].mail_args, got[0].mail_args


@test
def eight_bit_only_when_asked():
    # smtp-sink offers 8BITMIME; without --8bit the message still goes 7bit-clean.
    with servers.SmtpSink() as sink:
        r = send(sink.port, "--tls", "none", to=["bob@example.test"])
        [m] = sink.wait_messages(1)
    assert r.messages[0]["status"] == "sent", r
    assert "BODY=8BITMIME" not in m.mail_args, m.mail_args
    assert all(b < 0x80 for b in m.content), "8-bit octets in a message sent 7bit"


@test
def smtp_sink_dsn_parameters():
    with servers.SmtpSink() as sink:
        r = send(sink.port, "--tls", "none", "--dsn-notify", "SUCCESS,FAILURE", "--dsn-ret",
                 "HDRS", "--dsn-envid", "id+1=x")
        [m] = sink.wait_messages(1)
    assert r.first["status"] == "sent", r
    assert "RET=HDRS" in m.mail_args and "ENVID=id+2B1+3Dx" in m.mail_args, m.mail_args
    assert m.rcpt_args == ["<bob@example.test> NOTIFY=SUCCESS,FAILURE"], m.rcpt_args


@test
def smtp_sink_rcpt_rejection_reported():
    with servers.SmtpSink(extra_args=["-f", "rcpt"]) as sink:
        r = send(sink.port, "--tls", "none")
    m = r.first
    assert m["status"] == "failed" and m["class"] == "rejected" and m["stage"] == "rcpt", r
    assert m["rcpts"][0]["status"] == "rejected" and m["rcpts"][0]["code"] // 100 == 5, r


@test
def raw_message_to_aiosmtpd_round_trips_exactly():
    raw = (b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: raw\r\n"
           b"Message-ID: <raw-1@example.test>\r\n\r\nline\n.dot\r\n..two\r\nend")
    with servers.AioSmtpd() as srv:
        r = smtptool.run(srv.port, "--tls", "none", raw=raw)
        [m] = srv.wait_messages(1)
    assert r.first["status"] == "sent" and r.first["size"] == len(raw), r
    assert m.content == raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
    assert "SIZE=%d" % len(raw) in m.mail_options, m.mail_options


@test
def smtp_sink_batch_one_round_trip_per_message():
    with servers.SmtpSink() as sink:
        r = send(sink.port, "--tls", "none", "--batch", "--count", "5")
        got = sink.wait_messages(5)
    assert [m["status"] for m in r.messages] == ["sent"] * 5, r
    for m in got:
        check_received(m)
    t = [l.split(": ", 1)[1] for l in r.transcript.splitlines() if " C: " in l or " S: " in l]
    # Each end of data is followed by the next group before the server's reply to it.
    dots = [i for i, x in enumerate(t) if x == "."]
    assert len(dots) == 5
    for i in dots[:-1]:
        assert t[i + 1] == "RSET" and t[i + 4] == "DATA", t[i:i + 6]


if __name__ == "__main__":
    harness.run()
