"""pigeon_smtp_send_pipelined (raw messages pulled one at a time, pipelined across
messages, each result handed back as soon as it is final), driven by tool_smtp
--pipelined against Postfix smtp-sink, aiosmtpd (no PIPELINING) and scripted servers
for the refusals and a drop mid-batch. What each server received is checked.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import servers  # noqa: E402
import smtptool  # noqa: E402
from harness import test  # noqa: E402

MSG = (b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: pipelined\r\n\r\n"
       b"line one\r\n.dot line\r\nlast\r\n")
PLAIN = ("--tls", "none")
SHORT = ("--timeout", "all=1500")


def run(port, n, *args, **kw):
    return smtptool.run(port, *PLAIN, "--pipelined", "--count", str(n), *args, raw=MSG, **kw)


def done_order(r):
    return [(m["index"], m["skipped"], m["result"]["status"], m["result"]["class"])
            for m in r.json["pipelined"]]


def seqs(contents):
    """The X-Seq numbers of received message bodies, in order of arrival."""
    out = []
    for c in contents:
        m = re.search(rb"^X-Seq: (\d+)\r?\n", c)
        assert m, c[:200]
        out.append(int(m.group(1)))
    return out


def client_lines(r):
    return [line.split(": ", 1)[1] for line in r.transcript.splitlines()
            if " C: " in line or " S: " in line]


@test
def smtp_sink_one_round_trip_per_message_results_as_they_come():
    with servers.SmtpSink() as sink:
        r = run(sink.port, 5)
        got = sink.wait_messages(5)
    assert r.json["pipelined_rc"] == "PIGEON_OK", r
    assert done_order(r) == [(i, 0, "sent", "none") for i in range(5)], r
    # The sink got the five messages, in order, intact (dot-stuffing undone).
    assert sorted(seqs([m.content for m in got])) == list(range(5))
    for m in got:
        assert b"\n.dot line" in m.content and m.content.rstrip().endswith(b"last"), m.content
    # Pulled when the next group is appended: "next i+1" comes before "done i", and each
    # result is handed back before the next one completes.
    ev = r.json["events"]
    assert ev == ["next 0", "next 1", "done 0", "next 2", "done 1", "next 3", "done 2",
                  "next 4", "done 3", "done 4"], ev
    t = client_lines(r)
    dots = [i for i, x in enumerate(t) if x == "."]
    assert len(dots) == 5
    for i in dots[:-1]:
        assert t[i + 1] == "RSET" and t[i + 2].startswith("MAIL FROM:"), t[i:i + 6]


def step(n, rcpt=b"250 ok\r\n", data=b"354 go\r\n", eod=b"250 2.0.0 queued\r\n"):
    steps = [("expect", rb"^RSET"), ("send", b"250 ok\r\n")] if n > 0 else []
    steps += [("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
              ("expect", rb"^RCPT TO:"), ("send", rcpt),
              ("expect", rb"^DATA"), ("send", data)]
    if data.startswith(b"354"):
        steps += [("recv_data",), ("send", eod)]
    return steps


def head(caps=("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES")):
    return [servers.greet(), ("expect", rb"^EHLO "), ("send", servers.ehlo_reply(caps))]


QUIT = [("expect", rb"^QUIT"), ("send", b"221 bye\r\n")]


@test
def rcpt_550_and_452_fail_their_message_alone():
    script = head() + step(0) + \
        step(1, rcpt=b"550 5.1.1 no such user\r\n", data=b"554 5.5.1 no valid recipients\r\n") + \
        step(2, rcpt=b"452 4.3.1 insufficient system storage\r\n",
             data=b"554 5.5.1 no valid recipients\r\n") + \
        step(3) + QUIT
    with servers.ScriptedServer(script) as srv:
        r = run(srv.port, 4)
        srv.wait_done(1)
    srv.check()
    assert done_order(r) == [(0, 0, "sent", "none"), (1, 0, "failed", "rejected"),
                             (2, 0, "deferred", "deferred"), (3, 0, "sent", "none")], r
    res = {m["index"]: m["result"] for m in r.json["pipelined"]}
    assert res[1]["rcpts"][0]["code"] == 550 and res[2]["rcpts"][0]["code"] == 452, r
    assert r.json["pipelined_rc"] == "PIGEON_ERR_REJECTED", r
    # Only the accepted messages' data went out.
    assert seqs(srv.data) == [0, 3], srv.data


@test
def a_452_at_the_final_dot_defers_that_message_only():
    script = head() + step(0) + step(1, eod=b"452 4.3.1 out of spool space\r\n") + step(2) + QUIT
    with servers.ScriptedServer(script) as srv:
        r = run(srv.port, 3)
        srv.wait_done(1)
    srv.check()
    assert done_order(r) == [(0, 0, "sent", "none"), (1, 0, "deferred", "deferred"),
                             (2, 0, "sent", "none")], r
    assert len(srv.data) == 3


@test
def drop_mid_batch_reports_the_pulled_message_not_sent_and_pulls_no_more():
    script = head() + step(0) + [("expect", rb"^RSET"), ("reset",)]
    with servers.ScriptedServer(script) as srv:
        r = run(srv.port, 5, *SHORT)
    assert done_order(r) == [(0, 0, "sent", "none"), (1, 1, "deferred", "network")], r
    assert r.json["events"] == ["next 0", "next 1", "done 0", "done 1"], r
    assert r.json["pipelined_rc"] == "PIGEON_ERR_NETWORK", r
    assert seqs(srv.data) == [0]


@test
def drop_before_the_first_reply_is_that_message_own_failure():
    script = head() + [("expect", rb"^MAIL FROM:"), ("reset",)]
    with servers.ScriptedServer(script) as srv:
        r = run(srv.port, 3, *SHORT)
    assert done_order(r) == [(0, 0, "deferred", "network")], r
    assert r.json["events"] == ["next 0", "done 0"], r


@test
def scripted_server_without_pipelining_one_message_at_a_time():
    caps = ("8BITMIME", "ENHANCEDSTATUSCODES")
    one = [("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
           ("expect", rb"^RCPT TO:"), ("send", b"250 ok\r\n"),
           ("expect", rb"^DATA"), ("send", b"354 go\r\n"), ("recv_data",),
           ("send", b"250 queued\r\n")]
    rset = [("expect", rb"^RSET"), ("send", b"250 ok\r\n")]
    script = head(caps) + one + rset + one + QUIT
    with servers.ScriptedServer(script) as srv:
        r = run(srv.port, 2)
        srv.wait_done(1)
    srv.check()  # each command waited for its reply (the script expects them one by one)
    assert done_order(r) == [(0, 0, "sent", "none"), (1, 0, "sent", "none")], r
    assert r.json["events"] == ["next 0", "done 0", "next 1", "done 1"], r


@test
def aiosmtpd_no_pipelining_550_rcpt_on_one_message():
    bad = "nobody@example.test"
    with servers.AioSmtpd(reject_rcpt={bad: "550 5.1.1 no such user"}) as srv:
        r = run(srv.port, 3, "--msg-to", "1=" + bad)
        got = srv.wait_messages(2)
    assert r.json["caps"]["pipelining"] == 0, r
    assert done_order(r) == [(0, 0, "sent", "none"), (1, 0, "failed", "rejected"),
                             (2, 0, "sent", "none")], r
    assert seqs([m.content for m in got]) == [0, 2]
    for m in got:
        assert m.mail_from == "alice@example.test" and m.rcpt_tos == ["bob@example.test"]
        assert m.content.endswith(b"line one\r\n.dot line\r\nlast\r\n"), m.content


@test
def invalid_address_fails_its_message_alone():
    with servers.SmtpSink() as sink:
        r = run(sink.port, 3, "--msg-to", "1=bad address@example.test")
        got = sink.wait_messages(2)
    # A message that cannot be sent is done at once, when it is pulled (before the one
    # whose data is going out).
    assert sorted(done_order(r)) == [(0, 0, "sent", "none"), (1, 0, "failed", "config"),
                                     (2, 0, "sent", "none")], r
    assert sorted(seqs([m.content for m in got])) == [0, 2]


if __name__ == "__main__":
    harness.run()
