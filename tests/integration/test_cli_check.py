"""`pigeon check` against STARTTLS, implicit TLS and plaintext servers, and ports of the
wrong mode (issue 4). Nothing is sent: every server must have received no message."""
import json

import harness
import pki
import servers
from harness import test

USER, PASSWORD = "u@pigeon.test", "check-secret-pw"


def check(*args, env=None):
    e = {"PIGEON_CONFIG": None, "HOME": harness.tmpdir("home"), "PIGEON_PASSWORD": None,
         "XDG_CONFIG_HOME": harness.tmpdir("xdg")}
    e.update(env or {})
    return harness.pigeon("check", *args, env=e, timeout=60)


def check_json(*args, env=None, want_rc=0):
    rc, out, err = check("--json", *args, env=env)
    assert rc == want_rc, (rc, out, err)
    return json.loads(out)


@test
def starttls_server_full_report():
    with servers.AioSmtpd(tls="starttls", auth={USER: PASSWORD}) as srv:
        r = check_json("localhost:%d" % srv.port, "--tls", "starttls", "--ca-file", pki.get().ca)
        assert r["ok"] is True, r
        assert any(a["connect_ms"] is not None for a in r["addresses"]), r
        before, after = r["capabilities_before_tls"], r["capabilities"]
        assert before["starttls"] is True and "PLAIN" not in before["auth"], before
        assert "PLAIN" in after["auth"] and "LOGIN" in after["auth"], after
        t = r["tls"]
        assert t["established"] and t["verified"] and t["version"].startswith("TLSv1.")
        assert "localhost" in t["sans"] and "CN=" in t["subject"] and t["not_after"]
        assert t["sha256"].replace(":", "").lower() == pki.get().localhost.sha256
        assert r["auth"] is None  # no --user: no AUTH attempt
        assert not srv.messages


@test
def starttls_with_user_tries_auth():
    with servers.AioSmtpd(tls="starttls", auth={USER: PASSWORD}) as srv:
        r = check_json("localhost:%d" % srv.port, "--ca-file", pki.get().ca, "--user", USER,
                       env={"PIGEON_PASSWORD": PASSWORD})
        assert r["ok"] and r["auth"] in ("PLAIN", "LOGIN"), r
        rc, out, err = check("localhost:%d" % srv.port, "--ca-file", pki.get().ca, "--user", USER,
                             env={"PIGEON_PASSWORD": "wrong"})
        assert rc == 77, (rc, out, err)
        assert b"verdict:  FAIL" in out and b"auth" in out, out
        assert PASSWORD.encode() not in out + err
        assert [a[3] for a in srv.auth_attempts][-1] is False
        assert not srv.messages


@test
def implicit_tls_through_stunnel():
    with servers.AioSmtpd() as inner, servers.Stunnel(connect_port=inner.port) as tls:
        r = check_json("localhost:%d" % tls.port, "--tls", "implicit", "--ca-file", pki.get().ca)
        assert r["ok"] and r["tls"]["established"], r
        assert "capabilities_before_tls" not in r
        assert r["greeting"], r


@test
def plaintext_server_smtp_sink():
    with servers.SmtpSink() as sink:
        r = check_json("127.0.0.1:%d" % sink.port, "--tls", "none")
        assert r["ok"] is True, r
        assert r["capabilities"]["pipelining"] is True
        assert "tls" not in r
        assert "without TLS" in r["verdict"], r["verdict"]


@test
def starttls_required_but_not_offered():
    with servers.SmtpSink() as sink:
        rc, out, err = check("127.0.0.1:%d" % sink.port, "--tls", "starttls")
        assert rc == 69, (rc, out, err)
        assert b"STARTTLS" in out, out


@test
def wrong_mode_implicit_on_a_starttls_port():
    with servers.AioSmtpd(tls="starttls") as srv:
        rc, out, err = check("localhost:%d" % srv.port, "--tls", "implicit", "--timeout", "10")
        assert rc != 0, out
        text = out.lower()
        assert b"starttls" in text and b"greeting" in text, out


@test
def wrong_mode_starttls_on_an_implicit_port():
    with servers.AioSmtpd() as inner, servers.Stunnel(connect_port=inner.port) as tls:
        rc, out, err = check("localhost:%d" % tls.port, "--tls", "starttls", "--timeout", "5")
        assert rc != 0, out
        assert b"implicit" in out.lower() or b"465" in out, out


@test
def quit_after_stops_early():
    with servers.AioSmtpd(tls="starttls", auth={USER: PASSWORD}) as srv:
        r = check_json("localhost:%d" % srv.port, "--quit-after", "connect")
        assert r["ok"] and "capabilities" not in r and r["greeting"] is None, r
        r = check_json("localhost:%d" % srv.port, "--quit-after", "tls", "--ca-file", pki.get().ca)
        assert r["ok"] and r["tls"]["established"], r
        assert "capabilities" not in r or not r["capabilities"]["auth"], r
        r = check_json("localhost:%d" % srv.port, "--quit-after", "ehlo", "--ca-file",
                       pki.get().ca, "--user", USER, env={"PIGEON_PASSWORD": PASSWORD})
        assert r["ok"] and r["auth"] is None and "PLAIN" in r["capabilities"]["auth"], r
        assert not srv.auth_attempts


@test
def unknown_ca_is_named():
    with servers.AioSmtpd(tls="starttls") as srv:
        rc, out, err = check("localhost:%d" % srv.port)
        assert rc == 69, (rc, out, err)
        assert b"verif" in out.lower() and b"fix:" in out, out


@test
def provider_preset_resolves_without_a_target():
    rc, out, err = check("--provider", "nosuch")
    assert rc == 78 and b"unknown provider" in err, (rc, err)
    rc, out, err = check("--quit-after", "bogus", "x")
    assert rc == 64


if __name__ == "__main__":
    harness.run()
