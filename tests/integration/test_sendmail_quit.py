"""Issue 12, start-up: one `sendmail` or `send` process sends one message, so its QUIT
goes out with the end of the data when the server offers PIPELINING (RFC 2920 3.1: the
message content may lead a group of commands, QUIT end it), a round trip saved per
process. Scripted servers check the order on the wire: the QUIT arrives before the reply
to the final dot is sent (before the change the client waited for that reply, and the
server for the QUIT); without PIPELINING the QUIT waits for the reply as before; a
refused message is still reported as refused (the reply to the dot decides, not the 221).
"""
import harness
import servers
from harness import test

MESSAGE = b"From: a@example.com\r\nTo: r@example.com\r\nSubject: quit\r\n\r\nhi\r\n.dot\r\n"


def env():
    return {"PIGEON_CONFIG": "/dev/null", "XDG_STATE_HOME": harness.tmpdir("pigeon-quit-"),
            "PIGEON_PASSWORD": None}


def sendmail(port):
    return harness.pigeon("sendmail", "-i", "--host", "127.0.0.1", "--port", port, "--tls",
                          "none", "--timeout", "10", "r@example.com", input=MESSAGE, env=env())


def head(caps):
    return [servers.greet(), ("expect", rb"^EHLO "), ("send", servers.ehlo_reply(caps)),
            ("expect", rb"^MAIL FROM:<a@example.com>"), ("send", b"250 2.1.0 ok\r\n"),
            ("expect", rb"^RCPT TO:<r@example.com>"), ("send", b"250 2.1.5 ok\r\n"),
            ("expect", rb"^DATA\r\n"), ("send", b"354 go\r\n"), ("recv_data",)]


@test
def quit_travels_with_the_final_dot():
    # The server reads the QUIT before it answers the dot: a client waiting for the 250
    # first would stall here until the step timeout.
    script = head(("PIPELINING", "8BITMIME")) + [
        ("expect", rb"^QUIT\r\n", 5), ("send", b"250 2.0.0 queued\r\n221 2.0.0 bye\r\n"),
        ("close",)]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = sendmail(srv.port)
        srv.wait_done(1)
    assert rc == 0, (rc, err)
    assert srv.errors == [], srv.errors
    assert len(srv.data) == 1 and b"\r\n..dot\r\n" in srv.data[0], srv.data
    assert srv.received.endswith(b".\r\nQUIT\r\n"), srv.received[-40:]


@test
def without_pipelining_quit_waits_for_the_reply():
    script = head(("8BITMIME",)) + [
        ("send", b"250 2.0.0 queued\r\n"), ("expect", rb"^QUIT\r\n"),
        ("send", b"221 2.0.0 bye\r\n"), ("close",)]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = sendmail(srv.port)
        srv.wait_done(1)
    assert rc == 0, (rc, err)
    assert srv.received.endswith(b".\r\nQUIT\r\n"), srv.received[-40:]


@test
def refused_message_still_refused():
    script = head(("PIPELINING",)) + [
        ("expect", rb"^QUIT\r\n", 5),
        ("send", b"554 5.7.1 message refused\r\n221 2.0.0 bye\r\n"), ("close",)]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = sendmail(srv.port)
        srv.wait_done(1)
    assert rc == 69, (rc, err)
    assert b"554" in err and b"message refused" in err, err


if __name__ == "__main__":
    harness.run()
