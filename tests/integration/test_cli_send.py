"""`pigeon send` for real, against independent servers on loopback (issue 4).

Every exit code is produced by a real situation: 0 (aiosmtpd accepted everything),
64, 65, 66, 69 (a 550), 75 (a 451, a refused connection), 76 (a server breaking the
protocol), 77 (a wrong password), 78 (a config file others can read). Presets, `auto`,
precedence and the permission check are shown by `pigeon config show` without connecting.
Secrets never appear in argv, stdout, stderr or the -v transcript.
"""
import base64
import json
import os
import stat
import subprocess
import time

import harness
import pki
import servers
from harness import test

USER, PASSWORD = "sender@pigeon.test", "s3cret-Auth-Code-16"


def base_env(**extra):
    env = {"PIGEON_CONFIG": None, "XDG_CONFIG_HOME": harness.tmpdir("xdg"),
           "HOME": harness.tmpdir("home"), "PIGEON_PASSWORD": None}
    env.update(extra)
    return env


def send_args(port, *more, tls="starttls"):
    return ["send", "--host", "localhost", "--port", str(port), "--tls", tls,
            "--ca-file", pki.get().ca, "--from", "Sender <%s>" % USER,
            "--to", "rcpt@example.com", "--subject", "主题 test", "--text", "hello\n",
            *more]


def secrets_absent(*blobs):
    plain_b64 = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode()
    pw_b64 = base64.b64encode(PASSWORD.encode()).decode()
    for blob in blobs:
        text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
        for needle in (PASSWORD, plain_b64, pw_b64):
            assert needle not in text, "secret %r leaked in %r" % (needle, text[:300])


@test
def sends_through_starttls_and_auth_exit_0():
    with servers.AioSmtpd(tls="starttls", auth={USER: PASSWORD}) as srv:
        rc, out, err = harness.pigeon(*send_args(srv.port, "-v"),
                                      env=base_env(PIGEON_PASSWORD=PASSWORD))
        assert rc == 0, (rc, err)
        [m] = srv.wait_messages(1)
        assert m.auth_user == USER and m.tls_version, (m.auth_user, m.tls_version)
        assert m.rcpt_tos == ["rcpt@example.com"] and m.mail_from == USER
        assert m.message["Subject"] == "主题 test"
        assert b"sent <" in out, out
        assert b"[redacted]" in err or b"AUTH" in err, err
        secrets_absent(out, err)


@test
def json_result_fields():
    with servers.AioSmtpd(tls="starttls", auth={USER: PASSWORD}) as srv:
        rc, out, err = harness.pigeon(*send_args(srv.port, "--json", "--cc", "cc@example.com"),
                                      env=base_env(PIGEON_PASSWORD=PASSWORD))
        assert rc == 0, err
        r = json.loads(out)
        assert r["status"] == "sent" and r["error"] is None
        assert r["message_id"].startswith("<") and r["message_id"].endswith(">")
        assert [x["address"] for x in r["recipients"]] == ["rcpt@example.com", "cc@example.com"]
        assert all(x["status"] == "accepted" and x["code"] == 250 for x in r["recipients"])
        assert isinstance(r["duration_ms"], int)
        [m] = srv.wait_messages(1)
        assert m.message["Message-ID"] == r["message_id"]


@test
def password_file_and_command():
    d = harness.tmpdir("pw")
    pwfile = os.path.join(d, "pw")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pwfile, 0o600)
    with servers.AioSmtpd(tls="starttls", auth={USER: PASSWORD}) as srv:
        rc, out, err = harness.pigeon(*send_args(srv.port, "--user", USER, "--password-file",
                                                 pwfile), env=base_env())
        assert rc == 0, err
        rc, out, err = harness.pigeon(*send_args(srv.port, "--user", USER, "--password-command",
                                                 "cat %s" % pwfile), env=base_env())
        assert rc == 0, err
        assert len(srv.wait_messages(2)) == 2
    os.chmod(pwfile, 0o644)
    rc, out, err = harness.pigeon(*send_args(1, "--user", USER, "--password-file", pwfile),
                                  env=base_env())
    assert rc == 78 and b"chmod 600" in err, (rc, err)


@test
def password_on_command_line_refused_64():
    rc, out, err = harness.pigeon(*send_args(25, "--password", PASSWORD), env=base_env())
    assert rc == 64 and b"--password is not accepted" in err, (rc, err)
    assert err.count(b"\n") == 1


@test
def wrong_password_exit_77_with_hint():
    with servers.AioSmtpd(tls="starttls", auth={USER: PASSWORD}) as srv:
        rc, out, err = harness.pigeon(*send_args(srv.port, "-v", "--json"),
                                      env=base_env(PIGEON_PASSWORD="wrong-" + PASSWORD))
        assert rc == 77, (rc, err)
        r = json.loads(out)
        assert r["status"] == "failed" and r["error"]["class"] == "auth", r
        assert r["error"]["code"] == 535, r
        assert not srv.messages


@test
def rejected_recipient_exit_69():
    with servers.AioSmtpd(tls="starttls", reject_rcpt={"rcpt@example.com": "550 5.1.1 no such user"}) as srv:
        rc, out, err = harness.pigeon(*send_args(srv.port), env=base_env())
        assert rc == 69, (rc, err)
        assert b"550" in err and b"no such user" in err, err


@test
def partial_delivery_reports_the_rejected_one():
    with servers.AioSmtpd(tls="starttls", reject_rcpt={"bad@example.com": "550 5.1.1 no such user"}) as srv:
        rc, out, err = harness.pigeon(*send_args(srv.port, "--json", "--to", "bad@example.com",
                                                 "--cc", "ok2@example.com"), env=base_env())
        assert rc == 69, (rc, err)
        r = json.loads(out)
        assert r["status"] == "partial", r
        st = {x["address"]: (x["status"], x["code"]) for x in r["recipients"]}
        assert st["bad@example.com"] == ("rejected", 550), st
        assert st["rcpt@example.com"][0] == "accepted" and st["ok2@example.com"][0] == "accepted"
        [m] = srv.wait_messages(1)
        assert sorted(m.rcpt_tos) == ["ok2@example.com", "rcpt@example.com"]


@test
def temporary_rejection_exit_75():
    script = servers.default_session(caps=[], rcpt="451 4.7.1 try again later")
    with servers.ScriptedServer(script) as srv:
        rc, out, err = harness.pigeon(*send_args(srv.port, tls="none"), env=base_env())
        assert rc == 75, (rc, err)


@test
def connection_refused_exit_75():
    port = harness.free_port()
    rc, out, err = harness.pigeon(*send_args(port, "--json"), env=base_env())
    assert rc == 75, (rc, err)
    r = json.loads(out)
    assert r["status"] == "deferred" and r["error"]["class"] == "network", r


@test
def protocol_error_exit_76():
    script = [("send", b"220 hi\r\n"), ("expect", rb"^EHLO"), ("send", b"250-ok\r\n550 no\r\n"),
              ("drain", 1)]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = harness.pigeon(*send_args(srv.port, tls="none"), env=base_env())
        assert rc == 76, (rc, err)


@test
def auth_over_plaintext_refused_78():
    rc, out, err = harness.pigeon(*send_args(25, "--user", USER, tls="none"),
                                  env=base_env(PIGEON_PASSWORD=PASSWORD))
    assert rc == 78, (rc, err)
    secrets_absent(out, err)


@test
def implicit_tls_through_stunnel():
    with servers.AioSmtpd(auth={USER: PASSWORD}, require_tls_for_auth=False) as inner, \
            servers.Stunnel(connect_port=inner.port) as tls:
        rc, out, err = harness.pigeon(*send_args(tls.port, tls="implicit"),
                                      env=base_env(PIGEON_PASSWORD=PASSWORD))
        assert rc == 0, (rc, err)
        [m] = inner.wait_messages(1)
        assert m.auth_user == USER


@test
def wrong_tls_mode_named():
    with servers.AioSmtpd(tls="starttls") as srv:
        rc, out, err = harness.pigeon(*send_args(srv.port, "--timeout", "10", tls="implicit"),
                                      env=base_env())
        assert rc not in (0, 64), (rc, err)
        assert b"starttls" in err.lower(), err


def provider_like_session(after_auth):
    """A server that talks like a provider: STARTTLS, AUTH, then the given steps."""
    return [servers.greet(220, "newxmesmtplogicsvrszb1.qq.com XMail Esmtp QQ Mail Server."),
            ("expect", rb"^EHLO "), ("send", servers.ehlo_reply(["STARTTLS", "8BITMIME"])),
            ("expect", rb"^STARTTLS"), ("send", b"220 Ready to start TLS\r\n"),
            ("starttls", servers.server_context()),
            ("expect", rb"^EHLO "), ("send", servers.ehlo_reply(["AUTH LOGIN PLAIN", "8BITMIME"])),
            ("expect", rb"^AUTH ")] + after_auth


@test
def qq_login_fail_gets_the_authorization_code_hint():
    script = provider_like_session([
        ("send", b"535 Login Fail. Please enter your authorization code to login. More "
                 b"information will be found at http://service.mail.qq.com/detail/0/53\r\n"),
        ("drain", 1)])
    with servers.ScriptedServer(script) as srv:
        rc, out, err = harness.pigeon("send", "--provider", "qq", "--host", "localhost",
                                      "--port", str(srv.port), "--tls", "starttls",
                                      "--ca-file", pki.get().ca, "--from", "12345@qq.com",
                                      "--to", "friend@163.com", "--subject", "s", "--text", "t",
                                      "--json", env=base_env(PIGEON_PASSWORD=PASSWORD))
        assert rc == 77, (rc, out, err)
        r = json.loads(out)
        e = r["error"]
        assert e["class"] == "auth" and e["code"] == 535, e
        assert "Login Fail" in e["server_text"] and "authorization code" in e["hint"], e
        assert e["message"] != e["server_text"]
        secrets_absent(out, err)


@test
def sender_must_equal_login_gets_a_hint():
    script = provider_like_session([
        ("send", b"235 Authentication successful\r\n"),
        ("expect", rb"^MAIL FROM:"),
        ("send", b"501 mail from address must be same as authorization user\r\n"),
        ("drain", 1)])
    with servers.ScriptedServer(script) as srv:
        rc, out, err = harness.pigeon("send", "--provider", "qq", "--host", "localhost",
                                      "--port", str(srv.port), "--tls", "starttls",
                                      "--ca-file", pki.get().ca, "--user", "12345@qq.com",
                                      "--from", "other@example.com", "--to", "friend@163.com",
                                      "--subject", "s", "--text", "t",
                                      env=base_env(PIGEON_PASSWORD=PASSWORD))
        assert rc == 69, (rc, out, err)
        assert b"501" in err and b"hint:" in err and b"login" in err, err


def write_config(text, mode=0o600):
    d = harness.tmpdir("cfg")
    path = os.path.join(d, "config")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def config_show(*args, env=None):
    rc, out, err = harness.pigeon("config", "show", "--json", *args, env=env or base_env())
    assert rc == 0, (rc, err)
    return json.loads(out)


@test
def preset_qq_resolved_without_connecting():
    r = config_show("--provider", "qq")
    s = r["settings"]
    assert s["host"]["value"] == "smtp.qq.com" and s["port"]["value"] == "465"
    assert s["tls"]["value"] == "implicit" and s["host"]["source"] == "preset"
    r = config_show("--provider", "qq-starttls")
    assert r["settings"]["port"]["value"] == "587"
    assert r["settings"]["tls"]["value"] == "starttls"


@test
def provider_auto_from_the_from_domain():
    for addr, host in [("a@foxmail.com", "smtp.qq.com"), ("b@163.com", "smtp.163.com"),
                       ("c@hotmail.com", "smtp-mail.outlook.com")]:
        r = config_show("--provider", "auto", "--from", addr)
        assert r["settings"]["host"]["value"] == host, (addr, r)
    rc, out, err = harness.pigeon("config", "show", "--provider", "auto", "--from",
                                  "x@unknown.example", env=base_env())
    assert rc == 78 and b"no preset" in err, (rc, err)


@test
def precedence_cli_over_account_over_preset():
    path = write_config("default_account = work\n"
                        "timeout = 30\n"
                        "[account work]\nprovider = 163\nport = 25\ntls = starttls\n"
                        "user = me@163.com\npassword = topsecret-pw\n"
                        "[account other]\nhost = other.example\n")
    env = base_env(PIGEON_CONFIG=path)
    r = config_show(env=env)
    s = r["settings"]
    assert r["account"] == "work"
    assert s["host"]["value"] == "smtp.163.com" and s["host"]["source"] == "preset"
    assert s["port"]["value"] == "25" and s["port"]["source"] == "file"
    assert s["timeout"]["value"] == "30" and s["timeout"]["source"] == "file"
    assert s["password"]["value"] == "********"
    r = config_show("--port", "2525", env=env)
    assert r["settings"]["port"]["value"] == "2525"
    assert r["settings"]["port"]["source"] == "command line"
    r = config_show("--account", "other", env=env)
    assert r["settings"]["host"]["value"] == "other.example"
    rc, out, err = harness.pigeon("config", "show", env=env)
    assert rc == 0 and b"topsecret-pw" not in out + err
    rc, out, err = harness.pigeon("config", "show", "--account", "nope", env=env)
    assert rc == 78 and b"nope" in err


@test
def readable_secret_config_refused_78():
    path = write_config("[account a]\nhost = h.example\npassword = pw\n", mode=0o644)
    rc, out, err = harness.pigeon("config", "show", env=base_env(PIGEON_CONFIG=path))
    assert rc == 78, (rc, err)
    assert ("chmod 600 %s" % path).encode() in err, err
    # Without a secret in it, the same permissions are fine.
    path = write_config("[account a]\nhost = h.example\n", mode=0o644)
    rc, out, err = harness.pigeon("config", "show", env=base_env(PIGEON_CONFIG=path))
    assert rc == 0, err


@test
def account_supplies_from_and_secret():
    with servers.AioSmtpd(tls="starttls", auth={USER: PASSWORD}) as srv:
        path = write_config("[account t]\nhost = localhost\nport = %d\ntls = starttls\n"
                            "ca_file = %s\nuser = %s\nfrom = \"Acct\" <%s>\npassword = %s\n"
                            % (srv.port, pki.get().ca, USER, USER, PASSWORD))
        rc, out, err = harness.pigeon("send", "--to", "r@example.com", "--subject", "s",
                                      "--text", "t", "-v", env=base_env(PIGEON_CONFIG=path))
        assert rc == 0, err
        [m] = srv.wait_messages(1)
        assert m.message["From"].addresses[0].display_name == "Acct"
        secrets_absent(out, err)


@test
def no_secret_in_proc_cmdline_while_running():
    # A server that stalls after the greeting keeps pigeon alive while we look at it.
    script = [("send", b"220 slow\r\n"), ("stall", 5)]
    d = harness.tmpdir("pw2")
    pwfile = os.path.join(d, "pw")
    with open(pwfile, "w") as f:
        f.write(PASSWORD)
    os.chmod(pwfile, 0o600)
    with servers.ScriptedServer(script) as srv:
        env = dict(os.environ)
        env["PIGEON_PASSWORD"] = PASSWORD
        p = subprocess.Popen([harness.pigeon_path(), *send_args(srv.port, "--user", USER,
                                                                 "--timeout", "3", tls="starttls")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            time.sleep(0.7)
            with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                cmdline = f.read()
            secrets_absent(cmdline)
            assert b"send" in cmdline
        finally:
            out, err = p.communicate(timeout=20)
        secrets_absent(out, err)


@test
def usage_and_input_errors():
    rc, out, err = harness.pigeon("send", "--nope", env=base_env())
    assert rc == 64
    rc, out, err = harness.pigeon("send", "--host", "x", "--from", "a@b@c", "--to", "d@e.f",
                                  env=base_env())
    assert rc == 65, err
    rc, out, err = harness.pigeon("send", "--host", "x", "--from", "a@b.c", "--to", "d@e.f",
                                  "--attach", "/nonexistent/file.pdf", env=base_env())
    assert rc == 66, err
    rc, out, err = harness.pigeon("send", "--from", "a@b.c", "--to", "d@e.f", "--text", "x",
                                  env=base_env())
    assert rc == 78 and b"no server" in err, (rc, err)
    rc, out, err = harness.pigeon("send", "--port", "99999", env=base_env())
    assert rc == 64


@test
def providers_lists_required_presets():
    rc, out, err = harness.pigeon("providers", "--json")
    assert rc == 0
    names = {p["name"]: p for p in json.loads(out)}
    for n in ["qq", "qq-starttls", "qq-exmail", "163", "126", "yeah", "139", "sina", "sohu",
              "aliyun", "aliyun-qiye", "gmail", "outlook", "office365", "yahoo", "icloud",
              "zoho", "ses-REGION", "sendgrid", "mailgun", "brevo"]:
        assert n in names, n
    assert names["qq"]["host"] == "smtp.qq.com" and names["qq"]["port"] == 465
    assert "foxmail.com" in names["qq"]["domains"]
    assert "authorization code" in names["qq"]["notes"]
    assert names["outlook"]["host"] == "smtp-mail.outlook.com" and names["outlook"]["port"] == 587


if __name__ == "__main__":
    harness.run()
