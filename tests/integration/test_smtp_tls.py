"""TLS for the SMTP client: certificates that must be refused (wrong host name, unknown
CA, expired, a wildcard against an IP address, a TLS 1.0-only server), over implicit TLS
and over STARTTLS, each refused before any AUTH byte reaches the server (checked on the
server's recorded bytes); and what must work: a good chain, a SHA-256 pin, --insecure
(which must say so), and a transcript that never holds the password or its base64.
"""

import base64
import os
import re
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import pki  # noqa: E402
import servers  # noqa: E402
import smtptool  # noqa: E402
from harness import test  # noqa: E402

MSG = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: tls\r\n\r\nhello\r\n"
PASSWORD = "s3cret-pa55"
AUTH_CAPS = ("PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN")


def auth_session():
    """A session that accepts AUTH PLAIN and one message."""
    return servers.default_session(caps=AUTH_CAPS, auth=[
        ("expect", rb"^AUTH PLAIN "), ("send", b"235 2.7.0 ok\r\n")])


def assert_no_secret(srv, r):
    assert b"AUTH" not in srv.received, srv.received
    assert PASSWORD.encode() not in srv.received
    assert PASSWORD not in r.transcript


def implicit_refused(leaf=None, host="localhost", min_version=None, max_version=None):
    p = pki.get()
    with servers.TlsScriptedServer(auth_session(), leaf=leaf, min_version=min_version,
                                   max_version=max_version) as srv:
        r = smtptool.run(srv.port, "--tls", "implicit", "--ca-file", p.ca, "--user", "alice",
                         raw=MSG, password=PASSWORD, host=host)
    assert_no_secret(srv, r)
    c = r.connect
    assert c["class"] == "tls" and c["status"] == "failed", r
    assert r.messages == [], r
    return c


@test
def wrong_host_name_refused():
    c = implicit_refused(pki.get().wrong_name)
    assert "localhost" in c["errmsg"], c
    assert "host name" in c["hint"], c


@test
def unknown_ca_refused():
    c = implicit_refused(pki.get().unknown_ca)
    assert "--ca-file" in c["hint"] or "fingerprint" in c["hint"], c


@test
def expired_certificate_refused():
    c = implicit_refused(pki.get().expired)
    assert "expired" in (c["errmsg"] + c["hint"]).lower(), c


@test
def wildcard_against_ip_refused():
    c = implicit_refused(pki.get().wildcard, host="127.0.0.1")
    assert "host name" in c["hint"], c


@test
def tls10_only_server_refused():
    c = implicit_refused(min_version=ssl.TLSVersion.TLSv1, max_version=ssl.TLSVersion.TLSv1)
    assert "TLS 1.2" in c["errmsg"] or "version" in c["errmsg"].lower(), c


@test
def starttls_wrong_name_refused_before_auth():
    p = pki.get()
    ctx = servers.server_context(p.wrong_name)
    script = [servers.greet(), ("expect", rb"^EHLO "),
              ("send", servers.ehlo_reply(("STARTTLS",) + AUTH_CAPS)),
              ("expect", rb"^STARTTLS"), ("send", b"220 go ahead\r\n"), ("starttls", ctx),
              ("drain", 2)]
    with servers.ScriptedServer(script) as srv:
        r = smtptool.run(srv.port, "--tls", "starttls", "--ca-file", p.ca, "--user", "alice",
                         raw=MSG, password=PASSWORD, host="localhost")
    assert_no_secret(srv, r)
    assert r.connect["class"] == "tls" and r.connect["stage"] == "starttls", r


@test
def good_chain_implicit_with_auth_plain():
    p = pki.get()
    with servers.TlsScriptedServer(auth_session()) as srv:
        r = smtptool.run(srv.port, "--tls", "implicit", "--ca-file", p.ca, "--user", "alice",
                         raw=MSG, password=PASSWORD, host="localhost")
        srv.wait_done(1)
    srv.check()
    assert r.first["status"] == "sent", r
    assert r.json["tls"]["active"] == 1 and r.json["tls"]["verify"] == 0, r
    # The server got the credentials; the transcript has neither them nor their base64.
    plain = base64.b64encode(b"\0alice\0" + PASSWORD.encode())
    assert plain in srv.received
    assert plain.decode() not in r.transcript and PASSWORD not in r.transcript
    assert "AUTH PLAIN [redacted]" in r.transcript, r.transcript


@test
def fingerprint_pin_checked():
    p = pki.get()
    with servers.TlsScriptedServer(servers.default_session()) as srv:
        r = smtptool.run(srv.port, "--tls", "implicit", "--ca-file", p.ca,
                         "--fingerprint", p.localhost.sha256_colons, raw=MSG, host="localhost")
        srv.wait_done(1)
    assert r.first["status"] == "sent", r
    with servers.TlsScriptedServer(auth_session()) as srv:
        r = smtptool.run(srv.port, "--tls", "implicit", "--ca-file", p.ca, "--fingerprint",
                         p.wrong_name.sha256, "--user", "alice", raw=MSG, password=PASSWORD,
                         host="localhost")
    assert r.connect["class"] == "tls", r
    assert_no_secret(srv, r)


@test
def insecure_accepts_unknown_ca_and_says_so():
    with servers.TlsScriptedServer(servers.default_session(),
                                   leaf=pki.get().unknown_ca) as srv:
        r = smtptool.run(srv.port, "--tls", "implicit", "--insecure", raw=MSG, host="localhost")
        srv.wait_done(1)
    assert r.first["status"] == "sent", r
    assert "WARNING" in r.transcript and "NOT" in r.transcript, r.transcript


@test
def empty_host_refused():
    tool = harness.build_tool("smtp")
    rc, out, err = harness.run_cmd([tool, "--host", "", "--port", "1", "--from", "a@b.test",
                                    "--to", "c@d.test"])
    assert rc == 0 and b'"new":"PIGEON_ERR_INVALID"' in out, (out, err)


@test
def cram_md5_and_xoauth2_over_tls():
    import hashlib
    import hmac
    p = pki.get()
    challenge = b"<1896.697170952@postoffice.example.test>"
    expect = base64.b64encode(b"alice " + hmac.new(PASSWORD.encode(), challenge,
                                                    hashlib.md5).hexdigest().encode())
    cram = servers.default_session(caps=("PIPELINING", "AUTH LOGIN PLAIN CRAM-MD5"), auth=[
        ("expect", rb"^AUTH CRAM-MD5\r\n$"),
        ("send", b"334 " + base64.b64encode(challenge) + b"\r\n"),
        ("expect", b"^" + re.escape(expect) + rb"\r\n$"), ("send", b"235 2.7.0 ok\r\n")])
    with servers.TlsScriptedServer(cram) as srv:
        r = smtptool.run(srv.port, "--tls", "implicit", "--ca-file", p.ca, "--user", "alice",
                         raw=MSG, password=PASSWORD, host="localhost")
        srv.wait_done(1)
    srv.check()
    assert r.json["auth_used"] == "CRAM-MD5" and r.first["status"] == "sent", r
    assert expect.decode() not in r.transcript
    token = "ya29.test-token"
    ir = base64.b64encode(b"user=alice\x01auth=Bearer " + token.encode() + b"\x01\x01")
    xo = [servers.greet(), ("expect", rb"^EHLO "),
          ("send", servers.ehlo_reply(("AUTH PLAIN XOAUTH2",))),
          ("expect", b"^AUTH XOAUTH2 " + re.escape(ir) + rb"\r\n$"),
          ("send", b"334 eyJzdGF0dXMiOiI0MDEifQ==\r\n"),
          ("expect", rb"^\r\n$"), ("send", b"535 5.7.8 bad token\r\n"), ("drain", 1)]
    with servers.TlsScriptedServer(xo) as srv:
        r = smtptool.run(srv.port, "--tls", "implicit", "--ca-file", p.ca, "--user", "alice",
                         raw=MSG, token=token, host="localhost")
        srv.wait_done(1)
    srv.check()
    c = r.connect
    assert c["class"] == "auth" and c["code"] == 535, r
    assert token not in r.transcript and ir.decode() not in r.transcript


if __name__ == "__main__":
    harness.run()
