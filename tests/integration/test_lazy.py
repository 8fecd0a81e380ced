"""Libraries loaded on first use (lib/lazy; issue 12, start-up): the command links libc
only, and OpenSSL (libcrypto, libssl), SQLite, libpq (with its Kerberos, LDAP and GnuTLS),
gumbo, cmark-gfm, c-ares and libidn2 are mapped by the feature that needs them. Checked
with the dynamic loader's own trace (LD_DEBUG=files), and /proc/PID/maps of a running
process: `--version`, `--help` and a plaintext `sendmail` to Postfix's smtp-sink with no
spool load none of them; TLS loads libssl and libcrypto only, a suppression list in a
spool libsqlite3 only (libcrypto waits for a body's SHA-256); Markdown loads cmark-gfm and gumbo only, an international domain libidn2
only. And when one is missing (an LD_PRELOAD module makes its dlopen() fail as a missing
file does), the command names the file and what needed it and exits 69 (EX_UNAVAILABLE),
where before ld.so refused to start anything (exit 127).
"""
import os
import re

import harness
import servers
from harness import test

# SONAME prefixes of the libraries loaded on first use and of what libpq pulls in.
OPTIONAL = (b"libpq", b"libgumbo", b"libcmark-gfm", b"libcares", b"libidn2", b"libunistring",
            b"libgssapi", b"libldap", b"libgnutls", b"libp11-kit", b"libssl", b"libcrypto",
            b"libsqlite3")
MESSAGE = b"From: a@example.com\r\nTo: rcpt@example.com\r\nSubject: lazy\r\n\r\nhi\r\n"


def lazy_build():
    with open(os.path.join(harness.build_dir(), "CMakeCache.txt")) as f:
        cache = f.read()
    if "PIGEON_LAZY_LIBS:BOOL=OFF" in cache:
        raise harness.Skip("built with PIGEON_LAZY_LIBS=OFF: the libraries are linked")
    if "PIGEON_STATIC_DEPS:BOOL=ON" in cache:
        raise harness.Skip("built with PIGEON_STATIC_DEPS=ON: OpenSSL and SQLite are linked")


def env(**extra):
    """No configuration, a spool directory of our own."""
    e = {"PIGEON_CONFIG": "/dev/null", "XDG_STATE_HOME": harness.tmpdir("pigeon-lazy-")}
    e.update(extra)
    return e


def loaded(stderr):
    """The files ld.so mapped, from its LD_DEBUG=files trace ("file=libpq.so.5 [0]; ...")."""
    return set(re.findall(rb"file=(\S+) \[\d+\];", stderr))


def optional_in(libs):
    return sorted(l for l in libs if l.startswith(OPTIONAL))


def inputs():
    d = harness.tmpdir("pigeon-lazy-in-")
    md, html = os.path.join(d, "notes.md"), os.path.join(d, "mail.html")
    with open(md, "w") as f:
        f.write("# Notes\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ www.example.com\n")
    with open(html, "w") as f:
        f.write("<style>p { color: red }</style><p>hi</p>")
    return md, html


def dry_run(*more):
    return ["send", "--dry-run", "--to", "rcpt@example.com", "--subject", "lazy", *more]


@test
def version_and_sendmail_load_no_optional_library():
    lazy_build()
    rc, out, err = harness.pigeon("--version", env=env(LD_DEBUG="files"))
    assert rc == 0 and out.startswith(b"pigeon "), (rc, out, err[-2000:])
    libs = loaded(err)
    assert any(l.startswith(b"libc.so") for l in libs), sorted(libs)  # the trace works
    assert optional_in(libs) == [], optional_in(libs)
    rc, out, err = harness.pigeon("--help", env=env(LD_DEBUG="files"))
    assert rc == 0 and b"sendmail" in out, (rc, err[-2000:])
    assert optional_in(loaded(err)) == [], optional_in(loaded(err))
    with servers.SmtpSink() as sink:
        rc, out, err = harness.pigeon("sendmail", "-i", "--host", "127.0.0.1", "--port",
                                      sink.port, "--tls", "none", "rcpt@example.com",
                                      input=MESSAGE, env=env(LD_DEBUG="files"))
        assert rc == 0, (rc, err[-3000:])
        got = sink.wait_messages(1)
        assert len(got) == 1
    assert optional_in(loaded(err)) == [], optional_in(loaded(err))


def mapped(pid):
    """The shared objects in a running process's address space (/proc/PID/maps)."""
    with open("/proc/%d/maps" % pid, "rb") as f:
        return {os.path.basename(l.split()[-1]) for l in f if l.rstrip().endswith(b".so") or
                b".so." in l}


@test
def sendmail_process_maps_no_openssl_nor_sqlite():
    """What the process really holds, while it waits for the server's greeting (a server
    that accepts and says nothing for a while): libc only, no libcrypto, libssl or
    libsqlite3 (nor the others), mapped by no other path than dlopen() either."""
    lazy_build()
    import socket
    import subprocess
    import time
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    port = lst.getsockname()[1]
    cmd = [harness.pigeon_path(), "sendmail", "-i", "--host", "127.0.0.1", "--port", str(port),
           "--tls", "none", "--timeout", "20", "rcpt@example.com"]
    e = dict(os.environ)
    e.update(env())
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=e)
    try:
        proc.stdin.write(MESSAGE)
        proc.stdin.close()
        lst.settimeout(20)
        conn, _ = lst.accept()  # connected: past reading the message and the settings
        time.sleep(0.2)
        libs = mapped(proc.pid)
        assert any(l.startswith(b"libc.so") for l in libs), sorted(libs)
        assert optional_in(libs) == [], optional_in(libs)
        conn.close()
    finally:
        lst.close()
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@test
def tls_loads_openssl_and_a_spool_sqlite():
    lazy_build()
    import pki
    with servers.SmtpSink() as inner, servers.Stunnel(connect_port=inner.port) as tls:
        rc, out, err = harness.pigeon("sendmail", "-i", "--host", "localhost", "--port",
                                      tls.port, "--tls", "implicit", "--ca-file", pki.get().ca,
                                      "rcpt@example.com", input=MESSAGE,
                                      env=env(LD_DEBUG="files"))
        assert rc == 0, (rc, err[-3000:])
        assert len(inner.wait_messages(1)) == 1
    names = b" ".join(optional_in(loaded(err)))
    assert b"libssl.so" in names and b"libcrypto.so" in names, names
    assert b"libsqlite3" not in names and b"libpq" not in names, names
    spool = os.path.join(harness.tmpdir("pigeon-lazy-spool-"), "spool.db")
    rc, out, err = harness.pigeon("suppress", "add", "--spool", spool, "gone@example.com",
                                  env=env(LD_DEBUG="files"))
    assert rc == 0 and os.path.getsize(spool) > 0, (rc, err[-3000:])
    names = b" ".join(optional_in(loaded(err)))
    # (libcrypto waits for a message body's SHA-256: a suppression list needs none.)
    assert b"libsqlite3.so" in names, names
    assert b"libcrypto" not in names and b"libssl" not in names and b"libpq" not in names, names


@test
def each_feature_loads_its_own_library():
    lazy_build()
    md, html = inputs()
    rc, out, err = harness.pigeon(*dry_run("--from", "a@example.com", "--markdown-file", md),
                                  env=env(LD_DEBUG="files"))
    assert rc == 0 and b"<table" in out, (rc, err[-2000:])
    names = b" ".join(optional_in(loaded(err)))
    assert b"libcmark-gfm.so" in names and b"libcmark-gfm-extensions" in names, names
    assert b"libgumbo" in names, names  # the rendered HTML is inlined by the HTML pipeline
    assert b"libpq" not in names and b"libcares" not in names and b"libidn2" not in names
    rc, out, err = harness.pigeon(*dry_run("--from", "a@b\u00fccher.example", "--text", "x"),
                                  env=env(LD_DEBUG="files"))
    assert rc == 0 and b"From: a@xn--bcher-kva.example" in out, (rc, err[-2000:])
    names = b" ".join(optional_in(loaded(err)))
    assert b"libidn2" in names and b"libpq" not in names and b"libgumbo" not in names, names


@test
def missing_library_named_and_exit_69():
    lazy_build()
    preload = os.path.join(harness.build_dir(), "preload_nodlopen.so")
    if not os.path.exists(preload):
        raise harness.Skip("preload_nodlopen.so not built")
    md, html = inputs()
    import socket
    silent = socket.socket()  # accepts connections (the kernel's backlog), says nothing
    silent.bind(("127.0.0.1", 0))
    silent_port = silent.getsockname()[1]
    cases = [
        ("libpq", ["queue", "stats", "--spool", "postgresql://pigeon@127.0.0.1:1/none"],
         rb"the PostgreSQL spool needs libpq\.so\.\d+"),
        ("libgumbo", dry_run("--from", "a@example.com", "--html-file", html),
         rb"parsing HTML needs libgumbo\.so\.\d+"),
        ("libcmark-gfm", dry_run("--from", "a@example.com", "--markdown-file", md),
         rb"Markdown needs libcmark-gfm\.so\S*"),
        ("libidn2", dry_run("--from", "a@b\u00fccher.example", "--text", "x"),
         rb"an international domain name needs libidn2\.so\.\d+"),
        ("libcares", ["dns", "check", "example.com", "--dns-server", "127.0.0.1:1",
                      "--timeout", "1"], rb"the DNS resolver needs libcares\.so\.\d+"),
        ("libsqlite3", ["queue", "stats", "--spool", os.path.join(os.path.dirname(md), "q.db")],
         rb"the SQLite spool needs libsqlite3\.so\.\d+"),
        # A TLS handshake (implicit TLS: the hook runs before any byte is read).
        ("libssl", ["sendmail", "-i", "--host", "127.0.0.1", "--port", str(silent_port),
                    "--tls", "implicit", "rcpt@example.com"],
         rb"TLS \(OpenSSL\) needs libssl\.so\.\d+"),
        # A key: no hook of its own, the first stub called loads libcrypto.
        ("libcrypto", ["dkim", "keygen", "--domain", "example.com", "--selector", "s1",
                       "--type", "rsa", "--bits", "1024",
                       "--out", os.path.join(os.path.dirname(md), "k.pem")],
         rb"cryptography \(OpenSSL\) needs libcrypto\.so\.\d+"),
    ]
    silent.listen(8)
    asan = os.environ.get("ASAN_OPTIONS", "")
    for deny, args, pattern in cases:
        rc, out, err = harness.pigeon(*args, input=MESSAGE, env=env(
            LD_PRELOAD=preload, PIGEON_TEST_NO_DLOPEN=deny,
            # The sanitizer runtime must otherwise come first in the library list.
            ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0"))
        assert rc == 69, (deny, rc, err[-2000:])
        found = re.findall(pattern + rb".*, which cannot be loaded: [^\n]*No such file", err)
        assert len(found) == 1, (deny, err[-2000:])  # said once, with the loader's reason


if __name__ == "__main__":
    harness.run()
