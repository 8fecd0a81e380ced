"""Self-test of the integration test infrastructure (harness, pki, servers).

Each server is proven with an independent client (Python smtplib, swaks,
openssl s_client), so a pigeon test failure can be blamed on pigeon, not on the
peer.  Needs no pigeon build.
"""

import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import pki  # noqa: E402
import servers  # noqa: E402
from harness import test  # noqa: E402

MSG = (b"From: Alice <alice@example.test>\r\n"
       b"To: Bob <bob@example.test>\r\n"
       b"Subject: selftest\r\n"
       b"\r\n"
       b"hello\r\n"
       b".leading dot\r\n")


def s_client(port, *args, input=b"QUIT\r\n"):
    """Run openssl s_client against 127.0.0.1:port; return (rc, output str)."""
    rc, out, err = harness.run_cmd(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-brief"] + list(args),
        input=input, timeout=20)
    return rc, (out + err).decode("utf-8", "replace")


@test
def pki_leaves_verify_as_designed():
    p = pki.get()
    for name, leaf in p.leaves.items():
        rc, out, err = harness.run_cmd(["openssl", "verify", "-CAfile", p.ca, leaf.cert])
        good = name in ("localhost", "wrong_name", "wildcard")
        assert (rc == 0) == good, (name, rc, out, err)
        assert len(leaf.sha256) == 64 and leaf.sha256 != p.localhost.sha256 or \
            name == "localhost"
    rc, out, err = harness.run_cmd(["openssl", "x509", "-in", p.localhost.cert, "-noout",
                                    "-fingerprint", "-sha256"])
    assert out.decode().strip().split("=", 1)[1] == p.localhost.sha256_colons
    rc, out, err = harness.run_cmd(["openssl", "x509", "-in", p.wildcard.cert, "-noout",
                                    "-ext", "subjectAltName"])
    assert b"*.example.test" in out and b"IP Address" not in out, out


@test
def aiosmtpd_starttls_auth_with_smtplib():
    with servers.AioSmtpd(tls="starttls", auth={"alice": "s3cret"}) as srv:
        with smtplib.SMTP(srv.host, srv.port, timeout=10) as c:
            c.ehlo("client.test")
            assert not c.has_extn("auth"), "AUTH must wait for TLS"
            c.starttls(context=servers.client_context())
            c.ehlo("client.test")
            assert c.has_extn("auth")
            try:
                c.login("alice", "wrong")
                raise AssertionError("bad password accepted")
            except smtplib.SMTPAuthenticationError:
                pass
            c.login("alice", "s3cret")
            c.sendmail("alice@example.test", ["bob@example.test", "carol@example.test"], MSG)
        [m] = srv.wait_messages(1)
    assert m.mail_from == "alice@example.test"
    assert m.rcpt_tos == ["bob@example.test", "carol@example.test"]
    assert m.tls and m.auth_user == "alice" and m.helo == "client.test"
    assert m.content == MSG, m.content
    assert m.message["Subject"] == "selftest"
    # smtplib tries PLAIN then LOGIN with the bad password, then PLAIN again.
    assert [a[3] for a in srv.auth_attempts] == [False, False, True], srv.auth_attempts
    assert srv.auth_attempts[-1][:3] == ("PLAIN", "alice", "s3cret")


@test
def aiosmtpd_starttls_wrong_ca_fails():
    with servers.AioSmtpd(tls="starttls") as srv:
        with smtplib.SMTP(srv.host, srv.port, timeout=10) as c:
            ctx = servers.client_context(ca=pki.get().other_ca)
            try:
                c.starttls(context=ctx)
                raise AssertionError("verification should have failed")
            except ssl.SSLCertVerificationError:
                pass


@test
def aiosmtpd_plain_rejects_and_options():
    with servers.AioSmtpd(reject_rcpt={"nobody@example.test": "550 5.1.1 no such user"}) as srv:
        with smtplib.SMTP(srv.host, srv.port, timeout=10) as c:
            c.ehlo("x.test")
            assert not c.has_extn("auth") and not c.has_extn("starttls")
            refused = c.sendmail("a@example.test", ["nobody@example.test", "b@example.test"],
                                 MSG, mail_options=["BODY=8BITMIME"])
            assert refused == {"nobody@example.test": (550, b"5.1.1 no such user")}, refused
        [m] = srv.wait_messages(1)
        assert m.rcpt_tos == ["b@example.test"] and "BODY=8BITMIME" in m.mail_options
        assert not m.tls


@test
def aiosmtpd_implicit_tls():
    with servers.AioSmtpd(tls="implicit") as srv:
        with smtplib.SMTP_SSL(srv.host, srv.port, timeout=10,
                              context=servers.client_context()) as c:
            c.sendmail("a@example.test", ["b@example.test"], MSG)
        [m] = srv.wait_messages(1)
        assert m.tls and m.tls_version in ("TLSv1.2", "TLSv1.3"), m.tls_version
    assert m.content == MSG


@test
def stunnel_implicit_tls_with_smtplib():
    with servers.AioSmtpd() as inner, servers.Stunnel(connect_port=inner.port) as tun:
        with smtplib.SMTP_SSL(tun.host, tun.port, timeout=10,
                              context=servers.client_context()) as c:
            c.sendmail("a@example.test", ["b@example.test"], MSG)
        [m] = inner.wait_messages(1)
        assert m.content == MSG
        rc, out = s_client(tun.port, "-verify_return_error", "-CAfile", pki.get().ca,
                           "-verify_hostname", "localhost")
        assert rc == 0 and "Verification: OK" in out, out


@test
def bad_certificates_fail_verification():
    p = pki.get()
    cases = [(p.expired, "localhost", "expired"),
             (p.wrong_name, "localhost", "mismatch"),
             (p.unknown_ca, "localhost", "unable to get local issuer"),
             (p.wildcard, None, "mismatch")]
    for leaf, host, why in cases:
        with servers.AioSmtpd() as inner, \
                servers.Stunnel(connect_port=inner.port, cert=leaf.cert, key=leaf.key) as tun:
            check = ["-verify_hostname", host] if host else ["-verify_ip", "127.0.0.1"]
            rc, out = s_client(tun.port, "-verify_return_error", "-CAfile", p.ca, *check)
            assert rc != 0 and why in out.lower(), (leaf, out)
            # The same server passes when the name/IP check is the right one and the
            # certificate itself is good: the failure above is the certificate's.
            if leaf is p.wrong_name:
                rc, out = s_client(tun.port, "-verify_return_error", "-CAfile", p.ca,
                                   "-verify_hostname", "wrong.example")
                assert rc == 0, out
            if leaf is p.wildcard:
                rc, out = s_client(tun.port, "-verify_return_error", "-CAfile", p.ca,
                                   "-verify_hostname", "mx.example.test")
                assert rc == 0, out


@test
def stunnel_tls10_only():
    with servers.AioSmtpd() as inner, \
            servers.Stunnel(connect_port=inner.port, tls_max="TLSv1") as tun:
        rc, out = s_client(tun.port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
        assert rc == 0 and "Protocol version: TLSv1\n" in out, out
        rc, out = s_client(tun.port, "-tls1_2")
        assert rc != 0, out
        rc, out = s_client(tun.port)
        assert rc != 0, out


@test
def tls_scripted_server_tls10_only():
    v = ssl.TLSVersion.TLSv1
    with servers.TlsScriptedServer([servers.greet(), ("expect", rb"^QUIT"),
                                    ("send", b"221 bye\r\n"), ("close",)],
                                   min_version=v, max_version=v, step_timeout=5) as srv:
        rc, out = s_client(srv.port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0", "-ign_eof")
        assert rc == 0 and "Protocol version: TLSv1\n" in out, out
        srv.wait_done(1)
        assert srv.connections[0].tls_version == "TLSv1"
        srv.check()
        assert srv.received == b"QUIT\r\n", srv.received


@test
def smtp_sink_with_smtplib():
    with servers.SmtpSink() as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as c:
            c.ehlo("client.test")
            assert c.has_extn("pipelining")
            c.sendmail("a@example.test", ["b@example.test", "c@example.test"], MSG)
        [m] = sink.wait_messages(1)
    assert m.mail_from == "a@example.test"
    assert m.rcpt_tos == ["b@example.test", "c@example.test"]
    assert m.helo == "client.test"
    assert m.content == MSG.replace(b"\r\n", b"\n"), m.content
    assert m.message["Subject"] == "selftest"


@test
def scripted_server_with_swaks():
    script = servers.default_session(rcpt=["250 ok", "250 ok"])
    with servers.ScriptedServer(script) as srv:
        rc, out, err = harness.run_cmd(
            ["swaks", "--server", "127.0.0.1", "--port", str(srv.port), "--helo", "c.test",
             "--from", "a@example.test", "--to", "b@example.test,c@example.test",
             "--data", "Subject: x\n\n.dot\nbody", "--pipeline"], timeout=30)
        assert rc == 0, (out, err)
        srv.wait_done(1)
    srv.check()
    cmds = srv.commands()
    assert cmds[0] == b"EHLO c.test", cmds
    assert cmds[1:4] == [b"MAIL FROM:<a@example.test>", b"RCPT TO:<b@example.test>",
                         b"RCPT TO:<c@example.test>"], cmds
    assert srv.received.count(b"\r\n.\r\n") == 1
    [data] = srv.data
    assert data.endswith(b"\r\n..dot\r\nbody\r\n"), data
    assert servers.unstuff(data).endswith(b"\r\n.dot\r\nbody\r\n")
    assert cmds[-1] == b"QUIT"


@test
def scripted_server_records_unexpected_and_times_out():
    script = [servers.greet(), ("expect", rb"^HELO "), ("send", b"250 hi\r\n"),
              ("expect", rb"^NEVER", 1.0)]
    with servers.ScriptedServer(script, step_timeout=1.0) as srv:
        with smtplib.SMTP(srv.host, srv.port, timeout=10) as c:
            c.ehlo("x.test")   # server wants HELO: error recorded, no hang
        srv.wait_done(1)
    assert srv.errors and "expected" in srv.errors[0], srv.errors
    assert srv.received.startswith(b"ehlo x.test\r\n"), srv.received


@test
def scripted_server_big_replies_and_connections():
    scripts = [[("send", servers.multiline_reply(220, 10000))],
               [("send", servers.long_line_reply(220, 1 << 20))]]
    with servers.ScriptedServer(scripts=scripts, linger=0.2) as srv:
        for expected in (len(servers.multiline_reply(220, 10000)),
                         len(servers.long_line_reply(220, 1 << 20))):
            with socket.create_connection((srv.host, srv.port), timeout=10) as s:
                got = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            assert len(got) == expected, len(got)
        with socket.create_connection((srv.host, srv.port), timeout=10) as s:
            assert s.recv(10) == b""
        srv.wait_done(2)
    assert srv.extra_connections == 1
    srv.check()


@test
def scripted_starttls_with_smtplib():
    script = [servers.greet(), ("expect", rb"^EHLO "),
              ("send", servers.ehlo_reply(["STARTTLS"])),
              ("expect", rb"^STARTTLS\r\n"), ("send", b"220 go\r\n"), ("starttls", None),
              ("expect", rb"^EHLO "), ("send", servers.ehlo_reply([])),
              ("expect", rb"^QUIT"), ("send", b"221 bye\r\n"), ("close",)]
    with servers.ScriptedServer(script) as srv:
        c = smtplib.SMTP(srv.host, srv.port, timeout=10)
        c.starttls(context=servers.client_context())
        c.ehlo("x.test")
        c.quit()
        srv.wait_done(1)
    srv.check()
    assert srv.connections[0].tls_version in ("TLSv1.2", "TLSv1.3")
    # Decrypted bytes are recorded after the handshake, like the plaintext before.
    assert srv.received.endswith(b"ehlo x.test\r\nquit\r\n"), srv.received


@test
def process_manager_kills_group():
    proc = harness.spawn(["sh", "-c", "sleep 300 & sleep 300; wait"])
    time.sleep(0.2)
    harness.stop(proc)
    # Killed members may linger as zombies (PID 1 here need not reap): only
    # live ones count.
    live = harness.group_members(proc.pid)
    assert not live, live


if __name__ == "__main__":
    harness.run(file_timeout=120)
