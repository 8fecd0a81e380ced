"""Issue 12, defects 7 and 10: replies sent before their commands, and the exit codes and
messages of failures.

- An early talker (a server that writes 220, 250, 354, 250 at once, before reading
  anything) is a protocol error, exit 76, and pigeon sends no MAIL: it used to report
  "sent". The same after EHLO (a MAIL reply ahead of MAIL) and after the 354 (the final
  250 before the data: the body is not sent). PIPELINING replies, written together by a
  server for the group they answer, are still fine, and an unsolicited 421 is a
  temporary failure (75), not a protocol error.
- A refused connection says "cannot connect to HOST port N" once.
- A server answering TLS garbage is a temporary failure (75, retried), as the man page
  says; a certificate that does not verify is permanent (69).
"""
import json
import os
import socket
import threading

import harness
import servers
from harness import test

FROM = "sender@pigeon.test"


def env():
    return {"PIGEON_CONFIG": None, "XDG_CONFIG_HOME": harness.tmpdir("xdg"),
            "HOME": harness.tmpdir("home"), "PIGEON_PASSWORD": None}


def send(port, *more, tls="none"):
    return harness.pigeon("send", "--host", "127.0.0.1", "--port", str(port), "--tls", tls,
                          "--from", FROM, "--to", "r@example.com", "--subject", "s",
                          "--text", "body\n", "--timeout", "10", *more, env=env())


def caps(*extra):
    return servers.ehlo_reply(("8BITMIME", "ENHANCEDSTATUSCODES") + extra)


@test
def early_talker_at_greeting_is_76_and_nothing_sent():
    script = [("send", b"220 early ESMTP\r\n250 ok\r\n354 go\r\n250 queued\r\n"), ("drain", 2)]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = send(srv.port)
        srv.wait_done(1)
    assert rc == 76, (rc, out, err)
    assert b"sent" not in out and b"early talker" in err, (out, err)
    assert b"MAIL" not in srv.received and b"EHLO" not in srv.received, srv.received


@test
def early_reply_after_ehlo_is_76():
    script = [servers.greet(), ("expect", rb"^EHLO "),
              ("send", caps() + b"250 2.1.0 sender ok\r\n"), ("drain", 2)]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = send(srv.port)
        srv.wait_done(1)
    assert rc == 76, (rc, err)
    assert b"MAIL" not in srv.received, srv.received


@test
def final_reply_before_the_data_is_76_and_body_not_sent():
    script = [servers.greet(), ("expect", rb"^EHLO "), ("send", caps()),
              ("expect", rb"^MAIL FROM:"), ("send", b"250 ok\r\n"),
              ("expect", rb"^RCPT TO:"), ("send", b"250 ok\r\n"),
              ("expect", rb"^DATA"), ("send", b"354 go\r\n250 2.0.0 queued early\r\n"),
              ("drain", 2)]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = send(srv.port, "--json")
        srv.wait_done(1)
    assert rc == 76, (rc, err)
    r = json.loads(out)
    assert r["status"] != "sent" and r["error"]["class"] == "protocol", r
    assert b"body" not in srv.received, srv.received


@test
def pipelined_replies_written_together_are_fine():
    script = [servers.greet(), ("expect", rb"^EHLO "), ("send", caps("PIPELINING")),
              ("expect", rb"^MAIL FROM:"), ("expect", rb"^RCPT TO:"), ("expect", rb"^DATA"),
              ("send", b"250 ok\r\n250 ok\r\n354 go\r\n"), ("recv_data",),
              ("send", b"250 2.0.0 queued\r\n"), ("expect", rb"^QUIT"),
              ("send", b"221 bye\r\n"), ("close",)]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = send(srv.port)
        srv.wait_done(1)
    srv.check()
    assert rc == 0, (rc, err)
    assert len(srv.data) == 1


@test
def unsolicited_421_is_temporary_75():
    script = [servers.greet(), ("expect", rb"^EHLO "),
              ("send", caps() + b"421 4.3.2 shutting down\r\n"), ("drain", 2)]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = send(srv.port)
        srv.wait_done(1)
    assert rc == 75, (rc, err)
    assert b"421" in err, err


@test
def refused_connection_said_once():
    port = harness.free_port()
    rc, out, err = send(port)
    assert rc == 75, (rc, err)
    text = err.decode()
    assert text.count("cannot connect to") == 1, text


def garbage_tls_server():
    """Answers every ClientHello with bytes that are not TLS, then closes."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.settimeout(0.2)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                c, _ = lsock.accept()
            except socket.timeout:
                continue
            try:
                c.settimeout(5)
                c.recv(4096)
                c.sendall(b"\x15\x03\x03\x00\x02garbage that is not a TLS record" * 4)
            except OSError:
                pass
            c.close()
        lsock.close()

    threading.Thread(target=loop, daemon=True).start()
    harness.at_exit(stop.set)
    return lsock.getsockname()[1], stop


@test
def tls_garbage_is_temporary_75():
    port, stop = garbage_tls_server()
    try:
        rc, out, err = send(port, "--json", tls="implicit")
    finally:
        stop.set()
    assert rc == 75, (rc, out, err)
    r = json.loads(out)
    assert r["error"]["class"] == "tls" and r["status"] == "deferred", r


@test
def untrusted_certificate_is_permanent_69():
    with servers.AioSmtpd(tls="implicit") as srv:
        # No --ca-file: the test CA is not in the system store, so verification fails.
        rc, out, err = send(srv.port, "--json", tls="implicit")
    assert rc == 69, (rc, out, err)
    r = json.loads(out)
    assert r["error"]["class"] == "tls" and r["status"] == "failed", r


def daemon_env(port=9, tls="none"):
    d = harness.tmpdir("harden-daemon-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write("[account main]\nhost = 127.0.0.1\nport = %d\ntls = %s\ntimeout = 10\n"
                % (port, tls))
    os.chmod(cfg, 0o600)
    return {"PIGEON_CONFIG": cfg, "HOME": d, "XDG_STATE_HOME": os.path.join(d, "state"),
            "PIGEON_PASSWORD": None}, d


def daemon_outcome(env, d):
    rc, out, err = harness.pigeon("send", "--queue", "--from", FROM, "--to", "r@example.com",
                                  "--subject", "s", "--text", "t", env=env)
    assert rc == 0, err
    rc, out, err = harness.pigeon("daemon", "--once", "--log-file", os.path.join(d, "log"),
                                  env=env, timeout=60)
    assert rc == 0, err
    rc, out, err = harness.pigeon("queue", "list", "--json", env=env)
    [m] = json.loads(out)
    return m["counts"]


@test
def daemon_agrees_tls_garbage_retried_bad_certificate_failed():
    port, stop = garbage_tls_server()
    try:
        env, d = daemon_env(port, "implicit")
        counts = daemon_outcome(env, d)
    finally:
        stop.set()
    assert counts["deferred"] == 1 and counts["failed"] == 0, counts
    with servers.AioSmtpd(tls="implicit") as srv:
        env, d = daemon_env(srv.port, "implicit")
        counts = daemon_outcome(env, d)
    assert counts["failed"] == 1 and counts["deferred"] == 0, counts


@test
def damaged_spool_exits_74_as_documented():
    env, d = daemon_env()
    spool = os.path.join(d, "spool.db")
    with open(spool, "wb") as f:
        f.write(b"this is not an SQLite database, it was damaged " * 200)
    os.chmod(spool, 0o600)
    for args in (("queue", "list", "--spool", spool),
                 ("daemon", "--once", "--spool", spool, "--log-file", os.path.join(d, "log"))):
        rc, out, err = harness.pigeon(*args, env=env)
        assert rc == 74, (args, rc, err)
        assert spool.encode() in err, err
    # The man page lists the code.
    with open(os.path.join(harness.source_dir(), "docs", "pigeon.1")) as f:
        assert "74 " in f.read().split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0]


@test
def metrics_on_every_interface_warns():
    env, d = daemon_env()
    for host, warned in (("0.0.0.0", True), ("[::]", True), ("127.0.0.1", False)):
        listen = "%s:%d" % (host, harness.free_port())
        rc, out, err = harness.pigeon("daemon", "--once", "--metrics-listen", listen,
                                      "--log-file", os.path.join(d, "log"), env=env)
        if rc != 0 and b"cannot serve metrics" in err and host == "[::]":
            continue  # no IPv6 on this host
        assert rc == 0, (listen, rc, err)
        assert (b"every interface" in err) == warned, (listen, err)


if __name__ == "__main__":
    harness.run()
