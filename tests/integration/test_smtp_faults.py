"""The SMTP client against a scripted fault server: every failure must come back with
the right class, without hanging, without crashing (the tool runs under ASan in the
test build), and without sending what must not be sent.

Faults: 421 greeting, 451/550/452 on RCPT, 552 on MAIL, 354 then a drop mid-body, a
drop after the final dot before its reply, a stall at each step (short timeouts),
10,000-line replies, 1 MB lines, mismatched multi-line codes, "250-OK / 550 no",
bytes after the STARTTLS 220, STARTTLS not offered, offered but refused, and the
wrong TLS mode for the port.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import servers  # noqa: E402
import smtptool  # noqa: E402
from harness import test  # noqa: E402

MSG = (b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: fault\r\n\r\n"
       b"line one\r\n.dot line\r\nlast\r\n")
PLAIN = ("--tls", "none")
SHORT = ("--timeout", "all=1500")


def plain_caps(*extra):
    return ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES") + extra


def head(caps=plain_caps()):
    return [servers.greet(), ("expect", rb"^EHLO "), ("send", servers.ehlo_reply(caps))]


@test
def greeting_421_is_deferred():
    script = [servers.greet(421, "4.3.2 too busy, try later"), ("drain", 1)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
    c = r.connect
    assert c["class"] == "deferred" and c["stage"] == "greeting", r
    assert c["code"] == 421 and c["enhanced"] == "4.3.2" and c["temporary"] == 1, r
    assert r.messages == [], r
    assert b"MAIL" not in srv.received


@test
def rcpt_550_one_of_three_delivers_to_two():
    rcpts = ["250 2.1.5 ok", "550 5.1.1 <nobody@example.test>: user unknown", "250 2.1.5 ok"]
    with servers.ScriptedServer(servers.default_session(rcpt=rcpts)) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG,
                         to=["a@example.test", "nobody@example.test", "c@example.test"])
        srv.wait_done(1)
    srv.check()
    m = r.first
    assert m["status"] == "partial" and m["class"] == "rejected", r
    st = [(x["address"], x["status"], x["code"]) for x in m["rcpts"]]
    assert st == [("a@example.test", "accepted", 250),
                  ("nobody@example.test", "rejected", 550),
                  ("c@example.test", "accepted", 250)], st
    assert m["rcpts"][1]["enhanced"] == "5.1.1"
    assert "does not exist" in m["hint"], m
    assert len(srv.data) == 1 and servers.unstuff(srv.data[0]) == MSG


@test
def rcpt_451_is_deferred_for_that_recipient():
    rcpts = ["451 4.7.1 greylisted, try again", "250 2.1.5 ok"]
    with servers.ScriptedServer(servers.default_session(rcpt=rcpts)) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG, to=["a@example.test", "b@example.test"])
        srv.wait_done(1)
    srv.check()
    m = r.first
    assert m["status"] == "partial" and m["class"] == "deferred" and m["temporary"] == 1, r
    assert [x["status"] for x in m["rcpts"]] == ["deferred", "accepted"], r


@test
def all_rcpts_refused_sends_no_body():
    # Without PIPELINING the client must not even send DATA.
    script = head(("8BITMIME",)) + [
        ("expect", rb"^MAIL FROM:<alice@example\.test>"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:"), ("send", b"550 5.1.1 no\r\n"),
        ("expect", rb"^QUIT"), ("send", b"221 bye\r\n")]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
        srv.wait_done(1)
    srv.check()
    m = r.first
    assert m["status"] == "failed" and m["class"] == "rejected", r
    assert b"DATA" not in srv.received and srv.data == []


@test
def rcpt_452_too_many_moves_rest_to_next_transaction():
    caps = plain_caps()
    script = head(caps) + [
        ("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:<a@"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:<b@"), ("send", b"452 4.5.3 too many recipients\r\n"),
        ("expect", rb"^RCPT TO:<c@"), ("send", b"452 4.5.3 too many recipients\r\n"),
        ("expect", rb"^DATA"), ("send", b"354 go\r\n"), ("recv_data",),
        ("send", b"250 2.0.0 queued 1\r\n"),
        ("expect", rb"^RSET"), ("send", b"250 ok\r\n"),
        ("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:<b@"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:<c@"), ("send", b"250 ok\r\n"),
        ("expect", rb"^DATA"), ("send", b"354 go\r\n"), ("recv_data",),
        ("send", b"250 2.0.0 queued 2\r\n"),
        ("expect", rb"^QUIT"), ("send", b"221 bye\r\n")]
    with servers.ScriptedServer(script) as srv:
        # A composed message (re-readable) so that the second transaction can happen.
        r = smtptool.run(srv.port, *PLAIN, to=["a@example.test", "b@example.test",
                                                "c@example.test"])
        srv.wait_done(1)
    srv.check()
    m = r.first
    assert m["status"] == "sent" and m["transactions"] == 2, r
    assert [x["status"] for x in m["rcpts"]] == ["accepted"] * 3, r
    assert len(srv.data) == 2 and srv.data[0] == srv.data[1]


@test
def rcpt_452_with_raw_stream_leaves_rest_deferred():
    script = head() + [
        ("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:<a@"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:<b@"), ("send", b"452 4.5.3 too many recipients\r\n"),
        ("expect", rb"^DATA"), ("send", b"354 go\r\n"), ("recv_data",),
        ("send", b"250 2.0.0 queued\r\n"),
        ("expect", rb"^QUIT"), ("send", b"221 bye\r\n")]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG, to=["a@example.test", "b@example.test"])
        srv.wait_done(1)
    srv.check()
    m = r.first
    assert m["status"] == "partial" and m["class"] == "deferred", r
    assert [(x["status"], x["code"]) for x in m["rcpts"]] == [("accepted", 250),
                                                               ("deferred", 452)], r


@test
def mail_552_is_too_large_and_no_body_is_sent():
    script = head() + [
        ("expect", rb"^MAIL FROM:"), ("send", b"552 5.3.4 message size exceeds limit\r\n"),
        ("expect", rb"^RCPT TO:"), ("send", b"503 5.5.1 need MAIL\r\n"),
        ("expect", rb"^DATA"), ("send", b"503 5.5.1 need RCPT\r\n"),
        ("expect", rb"^QUIT"), ("send", b"221 bye\r\n")]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
        srv.wait_done(1)
    srv.check()
    m = r.first
    assert m["class"] == "too-large" and m["stage"] == "mail" and m["status"] == "failed", r
    assert m["code"] == 552 and "larger" in m["hint"], r
    assert m["rcpts"][0]["status"] == "rejected", r
    assert b"fault" not in srv.received and srv.data == []


@test
def data_refused_sends_no_body_byte():
    script = head() + [
        ("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:"), ("send", b"250 ok\r\n"),
        ("expect", rb"^DATA"), ("send", b"554 5.7.1 no data for you\r\n"),
        ("expect", rb"^QUIT"), ("send", b"221 bye\r\n")]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
        srv.wait_done(1)
    srv.check()
    assert r.first["class"] == "rejected" and r.first["stage"] == "data", r
    assert b"Subject: fault" not in srv.received


@test
def local_size_limit_refuses_before_mail():
    caps = plain_caps("SIZE 100")
    script = head(caps) + [("expect", rb"^QUIT"), ("send", b"221 bye\r\n")]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG + b"x" * 200)
        srv.wait_done(1)
    srv.check()
    m = r.first
    assert m["class"] == "too-large" and m["code"] == 0 and m["hint"], r
    assert b"MAIL" not in srv.received


@test
def drop_mid_body_is_network_failure():
    big = MSG + (b"y" * 998 + b"\r\n") * 3000  # 3 MB: the drop comes mid-body
    script = head() + [
        ("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:"), ("send", b"250 ok\r\n"),
        ("expect", rb"^DATA"), ("send", b"354 go\r\n"),
        ("recv_line",), ("reset",)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, *SHORT, raw=big)
    m = r.first
    assert m["class"] == "network" and m["status"] == "deferred", r
    assert m["rcpts"][0]["status"] == "deferred", r


@test
def drop_after_dot_before_reply_is_deferred():
    script = head() + [
        ("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
        ("expect", rb"^RCPT TO:"), ("send", b"250 ok\r\n"),
        ("expect", rb"^DATA"), ("send", b"354 go\r\n"),
        ("recv_data",), ("close",)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
        srv.wait_done(1)
    srv.check()
    m = r.first
    assert m["class"] == "network" and m["stage"] == "dot" and m["status"] == "deferred", r
    assert len(srv.data) == 1


STALL_POINTS = {
    # stage -> the script up to the stall
    "greeting": [],
    "ehlo": [servers.greet(), ("expect", rb"^EHLO ")],
    "mail": head() + [("expect", rb"^MAIL")],
    "rcpt": head() + [("expect", rb"^MAIL"), ("send", b"250 ok\r\n"), ("expect", rb"^RCPT")],
    "data": head() + [("expect", rb"^MAIL"), ("send", b"250 ok\r\n"), ("expect", rb"^RCPT"),
                      ("send", b"250 ok\r\n"), ("expect", rb"^DATA")],
    "dot": head() + [("expect", rb"^MAIL"), ("send", b"250 ok\r\n"), ("expect", rb"^RCPT"),
                     ("send", b"250 ok\r\n"), ("expect", rb"^DATA"), ("send", b"354 go\r\n"),
                     ("recv_data",)],
}


@test(timeout=90)
def stall_at_each_step_times_out():
    for stage, prefix in STALL_POINTS.items():
        with servers.ScriptedServer(prefix + [("stall", 6)], step_timeout=8) as srv:
            r = smtptool.run(srv.port, *PLAIN, "--timeout", "all=800", raw=MSG, timeout=20)
        res = r.first
        assert res["class"] == "network" and res["err"] == "PIGEON_ERR_TIMEOUT", (stage, r)
        assert res["stage"] == stage, (stage, r)
        assert res["temporary"] == 1, r


@test(timeout=30)
def total_deadline_bounds_a_trickling_server():
    # Each reply line arrives before the step timeout, but the whole call is bounded.
    trickle = [("send_after", 0.4, b"250-line %d\r\n" % i) for i in range(30)]
    script = [servers.greet(), ("expect", rb"^EHLO ")] + trickle
    with servers.ScriptedServer(script, step_timeout=20) as srv:
        r = smtptool.run(srv.port, *PLAIN, "--timeout", "all=2000", "--total-ms", "2500",
                         raw=MSG)
    assert r.connect["err"] == "PIGEON_ERR_TIMEOUT", r


@test
def ten_thousand_line_reply_is_protocol_error():
    script = [servers.greet(), ("expect", rb"^EHLO "),
              ("send", servers.multiline_reply(250, 10000)), ("drain", 1)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
    assert r.connect["class"] == "protocol" and r.connect["stage"] == "ehlo", r
    assert "too many lines" in r.connect["errmsg"], r


@test
def one_megabyte_line_is_protocol_error():
    script = [("send", servers.long_line_reply(220, 1 << 20)), ("drain", 1)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
    assert r.connect["class"] == "protocol" and r.connect["stage"] == "greeting", r


@test
def mismatched_multiline_codes_are_protocol_error():
    script = [servers.greet(), ("expect", rb"^EHLO "),
              ("send", b"250-scripted.test\r\n251-PIPELINING\r\n250 8BITMIME\r\n"), ("drain", 1)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
    assert r.connect["class"] == "protocol", r
    assert "mismatched" in r.connect["errmsg"], r


@test
def ok_then_550_is_protocol_error():
    script = head(("8BITMIME",)) + [("expect", rb"^MAIL FROM:"),
                                    ("send", b"250-OK\r\n550 no\r\n"), ("drain", 1)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
    m = r.first
    assert m["class"] == "protocol" and m["stage"] == "mail", r
    assert m["rcpts"][0]["status"] == "deferred", r
    assert b"RCPT" not in srv.received and b"DATA" not in srv.received


@test
def garbage_reply_is_protocol_error():
    script = [("send", b"HTTP/1.1 400 Bad Request\r\n\r\n"), ("drain", 1)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
    assert r.connect["class"] == "protocol", r


@test
def bytes_after_starttls_220_abort():
    caps = ("STARTTLS", "PIPELINING", "AUTH PLAIN LOGIN")
    script = head(caps) + [("expect", rb"^STARTTLS\r\n"),
                           ("send", b"220 2.0.0 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n"),
                           ("drain", 2)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, "--tls", "starttls", "--user", "alice", password="s3cret",
                         raw=MSG)
    c = r.connect
    assert c["class"] == "protocol" and c["stage"] == "starttls", r
    assert "injection" in c["errmsg"], r
    after = srv.received.split(b"STARTTLS\r\n", 1)[1]
    assert after == b"", after  # not even a ClientHello
    assert b"AUTH" not in srv.received and b"MAIL" not in srv.received


@test
def starttls_not_offered_stops_before_auth_and_mail():
    script = head(("PIPELINING", "AUTH PLAIN LOGIN")) + [("drain", 2)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, "--tls", "starttls", "--user", "alice", password="s3cret",
                         raw=MSG)
    c = r.connect
    assert c["class"] == "tls" and c["stage"] == "starttls", r
    assert "STARTTLS" in c["hint"], r
    assert b"AUTH" not in srv.received and b"MAIL" not in srv.received
    assert b"s3cret" not in srv.received


@test
def starttls_refused_stops_before_auth_and_mail():
    script = head(("STARTTLS", "AUTH PLAIN")) + [("expect", rb"^STARTTLS"),
                                                ("send", b"454 4.7.0 TLS not available\r\n"),
                                                ("drain", 2)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, "--tls", "starttls", "--user", "alice", password="s3cret",
                         raw=MSG)
    c = r.connect
    assert c["class"] == "tls" and c["code"] == 454, r
    assert b"AUTH" not in srv.received and b"MAIL" not in srv.received


@test
def auth_in_plaintext_mode_is_refused_up_front():
    script = [("drain", 1)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, "--tls", "none", "--user", "alice", password="s3cret",
                         raw=MSG)
    assert r.json["new"] == "PIGEON_ERR_CONFIG", r
    assert srv.received == b""


@test
def implicit_tls_against_plaintext_port_says_use_starttls():
    script = [servers.greet(), ("drain", 2)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, "--tls", "implicit", raw=MSG, timeout=30)
    c = r.connect
    assert c["class"] == "tls", r
    assert "starttls" in (c["hint"] or "").lower(), r


@test
def starttls_against_implicit_port_says_use_implicit():
    # A TLS server waits for the ClientHello: the greeting times out, and the hint
    # names implicit TLS. (A server that speaks first sends a TLS record: same hint.)
    with servers.TlsScriptedServer([("drain", 3)]) as srv:
        r = smtptool.run(srv.port, "--tls", "starttls", "--timeout", "greeting=1000", raw=MSG)
    c = r.connect
    assert c["err"] == "PIGEON_ERR_TIMEOUT" and c["stage"] == "greeting", r
    assert "implicit" in c["hint"], r
    alert = [("send", b"\x15\x03\x03\x00\x02\x02\x28"), ("drain", 1)]
    with servers.ScriptedServer(alert) as srv:
        r = smtptool.run(srv.port, "--tls", "starttls", raw=MSG)
    c = r.connect
    assert c["class"] == "tls" and "implicit" in c["hint"], r


@test
def helo_fallback_when_ehlo_unknown():
    script = [servers.greet(), ("expect", rb"^EHLO "), ("send", b"502 5.5.2 what?\r\n"),
              ("expect", rb"^HELO "), ("send", b"250 hi\r\n"),
              ("expect", rb"^MAIL FROM:<alice@example\.test>\r\n$"), ("send", b"250 ok\r\n"),
              ("expect", rb"^RCPT TO:"), ("send", b"250 ok\r\n"),
              ("expect", rb"^DATA"), ("send", b"354 go\r\n"), ("recv_data",),
              ("send", b"250 ok\r\n"), ("expect", rb"^QUIT"), ("send", b"221 bye\r\n")]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, raw=MSG)
        srv.wait_done(1)
    srv.check()
    assert r.first["status"] == "sent", r
    assert r.json["caps"]["esmtp"] == 0, r


def batch_step(n, rcpt=b"250 ok\r\n", data=b"354 go\r\n", eod=b"250 2.0.0 queued\r\n"):
    steps = [("expect", rb"^RSET")] if n > 0 else []
    steps += [("send", b"250 ok\r\n")] if n > 0 else []
    steps += [("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
              ("expect", rb"^RCPT TO:"), ("send", rcpt),
              ("expect", rb"^DATA"), ("send", data)]
    if data.startswith(b"354"):
        steps += [("recv_data",), ("send", eod)]
    return steps


@test
def batch_one_rejected_message_does_not_stop_the_others():
    script = head() + batch_step(0) + \
        batch_step(1, rcpt=b"550 5.1.1 no such user\r\n", data=b"554 5.5.1 no valid recipients\r\n") + \
        batch_step(2) + [("expect", rb"^QUIT"), ("send", b"221 bye\r\n")]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, "--batch", "--count", "3")
        srv.wait_done(1)
    srv.check()
    st = [(m["status"], m["class"]) for m in r.messages]
    assert st == [("sent", "none"), ("failed", "rejected"), ("sent", "none")], r
    assert r.messages[1]["rcpts"][0]["code"] == 550, r
    assert len(srv.data) == 2
    # One round trip per message: the end of data and the next group share a write.
    t = [l.split(": ", 1)[1] for l in r.transcript.splitlines() if " C: " in l or " S: " in l]
    i = t.index(".")
    assert t[i + 1] == "RSET" and t[i + 2].startswith("MAIL FROM:"), t


@test
def batch_drop_after_first_message_fails_the_rest():
    script = head() + batch_step(0, eod=b"250 2.0.0 queued\r\n") + [("expect", rb"^RSET"),
                                                                     ("reset",)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, *PLAIN, *SHORT, "--batch", "--count", "3")
    st = [(m["status"], m["class"]) for m in r.messages]
    assert st[0] == ("sent", "none"), r
    assert st[1:] == [("deferred", "network")] * 2, r


if __name__ == "__main__":
    harness.run()
