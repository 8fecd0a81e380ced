"""Issue 12, defects 1, 3, 4 and 8: the password command and the configuration file under
abuse, as a user meets them.

- password_command: `sleep` past its deadline, `yes`, a failing command and a silent one
  end with exit 78 naming the command, quickly, with nothing left running; `yes` gives its
  first line (aiosmtpd accepts "y" as the password); a daemon waiting on a hanging command
  still stops at SIGTERM and kills it.
- A configuration file that group or others can write, or that another user owns, is
  refused (78) whatever it holds, naming the chmod / chown that fixes it.
- Every value of the file goes through the command line's validator: `helo = foo<CR>RSET`
  is refused with the file and line, and no connection is made; so are bad ports, modes,
  timeouts, limits, fingerprints and addresses, in any account.
- [account a] twice names both lines; two accounts and no default ask for --account with
  the names; a bad from is reported with its file and line.
"""
import json
import os
import signal
import time

import harness
import pki
import servers
from harness import test

USER = "sender@pigeon.test"


def write(text, mode=0o600, uid=None):
    d = harness.tmpdir("harden-cfg-")
    path = os.path.join(d, "config")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    if uid is not None:
        os.chown(path, uid, -1)
    return path


def env_for(path, **extra):
    d = harness.tmpdir("harden-home-")
    env = {"PIGEON_CONFIG": path, "HOME": d, "XDG_CONFIG_HOME": d,
           "XDG_STATE_HOME": os.path.join(d, "state"), "PIGEON_PASSWORD": None}
    env.update(extra)
    return env


def send(env, *more, timeout=30):
    return harness.pigeon("send", "--to", "r@example.com", "--subject", "s", "--text", "t",
                          *more, env=env, timeout=timeout)


def running_with(marker):
    """PIDs of processes whose command line holds marker."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def account(port, extra=""):
    return ("[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\nfrom = %s\n"
            "timeout = 10\n%s" % (port, USER, extra))


# ---- 1. password_command ---------------------------------------------------------------

@test
def hanging_password_command_times_out_78_and_is_killed():
    marker = "987.%d" % os.getpid()
    path = write(account(9, "user = %s\npassword_command = sleep %s\n"
                         "password_command_timeout = 1\n" % (USER, marker)))
    t0 = time.monotonic()
    rc, out, err = send(env_for(path))
    took = time.monotonic() - t0
    assert rc == 78, (rc, err)
    assert b"timed out" in err and ("sleep %s" % marker).encode() in err, err
    assert took < 10, took
    harness.wait_for(lambda: not running_with(marker), 5, what="the command killed")
    # The same deadline applies to --password-command.
    rc, out, err = send(env_for(path), "--password-command", "sleep %s" % marker)
    assert rc == 78 and b"timed out" in err, (rc, err)
    harness.wait_for(lambda: not running_with(marker), 5, what="the command killed")


@test
def endless_output_gives_the_first_line_quickly():
    # `yes` prints "y" forever: pigeon reads the first line, closes the pipe, and `yes`
    # dies of SIGPIPE (not an error: we stopped reading). aiosmtpd accepts "y".
    with servers.AioSmtpd(tls="starttls", auth={USER: "y"}) as srv:
        path = write("[account main]\nhost = localhost\nport = %d\ntls = starttls\n"
                     "ca_file = %s\nuser = %s\nfrom = %s\npassword_command = yes\n"
                     % (srv.port, pki.get().ca, USER, USER))
        t0 = time.monotonic()
        rc, out, err = send(env_for(path))
        took = time.monotonic() - t0
        assert rc == 0, (rc, err)
        [m] = srv.wait_messages(1)
        assert m.auth_user == USER, m.auth_user
    assert took < 10, took


@test
def failing_and_silent_commands_78_naming_them():
    for cmd, why in (("exit 3", b"exit status 3"), ("true", b"printed nothing"),
                     ("kill -9 $$", b"signal 9")):
        path = write(account(9, "user = %s\npassword_command = %s\n" % (USER, cmd)))
        rc, out, err = send(env_for(path))
        assert rc == 78, (cmd, rc, err)
        assert why in err and cmd.encode() in err, (cmd, err)


@test
def daemon_waiting_on_password_command_stops_at_sigterm():
    d = harness.tmpdir("harden-daemon-")
    started = os.path.join(d, "started")
    marker = "988.%d" % os.getpid()
    path = write(account(9, "user = %s\npassword_command = touch %s; sleep %s\n"
                         % (USER, started, marker)))
    env = env_for(path)
    rc, out, err = harness.pigeon("send", "--queue", "--to", "r@example.com", "--subject",
                                  "s", "--text", "t", env=env)
    assert rc == 0, (rc, err)
    proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", "1", "--log-file",
                          os.path.join(d, "log")],
                         env={k: v for k, v in env.items() if v is not None})
    try:
        harness.wait_for(lambda: os.path.exists(started), 15, what="the command started")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        assert time.monotonic() - t0 < 8
        harness.wait_for(lambda: not running_with(marker), 5, what="the command killed")
    finally:
        harness.stop(proc)
    # The message is still in the spool, deferred or queued, never failed.
    rc, out, err = harness.pigeon("queue", "list", "--json", env=env)
    assert rc == 0, err
    [m] = json.loads(out)
    assert m["counts"]["failed"] == 0 and m["counts"]["delivered"] == 0, m


@test
def sigterm_to_send_kills_the_command_too():
    d = harness.tmpdir("harden-send-")
    started = os.path.join(d, "started")
    marker = "989.%d" % os.getpid()
    path = write(account(9, "user = %s\npassword_command = touch %s; sleep %s\n"
                         % (USER, started, marker)))
    env = {k: v for k, v in env_for(path).items() if v is not None}
    proc = harness.spawn([harness.pigeon_path(), "send", "--to", "r@example.com", "--subject",
                          "s", "--text", "t"], env=env)
    try:
        harness.wait_for(lambda: os.path.exists(started), 15, what="the command started")
        proc.send_signal(signal.SIGTERM)  # to pigeon alone, as `kill PID` does
        assert proc.wait(10) == -signal.SIGTERM
        harness.wait_for(lambda: not running_with(marker), 5, what="the command killed")
    finally:
        harness.stop(proc)


# ---- 3. who may write the file ---------------------------------------------------------

@test
def group_writable_file_refused_whatever_it_holds():
    path = write("[account a]\nhost = h.example\n", mode=0o664)
    rc, out, err = harness.pigeon("config", "show", env=env_for(path))
    assert rc == 78, (rc, err)
    assert ("chmod go-w %s" % path).encode() in err, err
    os.chmod(path, 0o646)
    rc, out, err = harness.pigeon("config", "show", env=env_for(path))
    assert rc == 78 and b"chmod go-w" in err, (rc, err)
    os.chmod(path, 0o644)  # readable is fine without a secret
    rc, out, err = harness.pigeon("config", "show", env=env_for(path))
    assert rc == 0, err


@test
def file_of_another_user_refused():
    if os.geteuid() != 0:
        raise harness.Skip("needs root to give a file away")
    path = write("[account a]\nhost = h.example\n", mode=0o600, uid=65534)
    rc, out, err = send(env_for(path), "--from", USER)
    assert rc == 78, (rc, err)
    assert b"owned by uid 65534" in err and ("chown %d %s" % (os.geteuid(), path)).encode() \
        in err, err


# ---- 4. every value validated ----------------------------------------------------------

@test
def helo_with_cr_refused_with_file_and_line_nothing_sent():
    with servers.ScriptedServer([servers.greet(), ("drain", 2)]) as srv:
        path = write(account(srv.port, "helo = foo\rRSET\n"))
        rc, out, err = send(env_for(path))
        assert rc == 78, (rc, err)
        assert ("%s:7: invalid helo" % path).encode() in err, err
        assert b"\\x0D" in err and b"\r" not in err, err
        time.sleep(0.2)
        assert srv.connections == [], "connected despite the bad helo"


@test
def every_key_validated_as_on_the_command_line():
    bad = {"host": "a b", "port": "0", "tls": "maybe", "helo": "a b", "timeout": "-1",
           "connect_timeout": "soon", "auth": "kerberos", "insecure": "perhaps",
           "tls_fingerprint": "zz", "rate_per_second": "-2", "daily_limit": "x",
           "max_connections": "0", "password_command_timeout": "0", "user": "a\x01b",
           "from": "not an address", "provider": "two words", "port ": "70000"}
    for key, value in bad.items():
        # In an account that is not the one used: still an error, with its line.
        path = write("[account used]\nhost = h.example\n\n[account other]\n%s = %s\n"
                     % (key.strip(), value))
        rc, out, err = harness.pigeon("config", "show", "--account", "used",
                                      env=env_for(path))
        assert rc == 78, (key, rc, err)
        assert ("%s:5: invalid %s" % (path, key.strip())).encode() in err, (key, err)
    # The command line refuses the same values (64, usage).
    for flag, value in (("--helo", "a\rb"), ("--port", "0"), ("--timeout", "-1")):
        rc, out, err = send(env_for(write("")), "--from", USER, "--host", "h", flag, value)
        assert rc == 64 and ("invalid %s" % flag).encode() in err, (flag, rc, err)


# ---- 8. accounts -----------------------------------------------------------------------

@test
def duplicate_account_names_both_lines():
    path = write("[account a]\nhost = h1\n\n[account b]\nhost = h2\n[account a]\nport = 25\n")
    rc, out, err = harness.pigeon("config", "show", "--account", "b", env=env_for(path))
    assert rc == 78, (rc, err)
    assert ("%s:6: [account a] is already defined at line 1" % path).encode() in err, err


@test
def two_accounts_without_default_ask_for_account():
    path = write("[account a]\nhost = h1\n\n[account b]\nhost = h2\n")
    rc, out, err = send(env_for(path), "--from", USER)
    assert rc == 78, (rc, err)
    assert b"choose one with --account (a, b)" in err, err
    assert b"no server given" not in err, err


@test
def bad_from_in_file_named_with_file_and_line():
    path = write("[account a]\nhost = h1\nfrom = not an address\n")
    rc, out, err = send(env_for(path))
    assert rc == 78, (rc, err)
    assert ("%s:3: invalid from" % path).encode() in err, err
    assert b"--from" not in err, err


if __name__ == "__main__":
    harness.run()
