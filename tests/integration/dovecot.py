"""A throwaway Dovecot (IMAP and POP3) for pigeon's integration tests.

``Dovecot()`` writes a configuration into a harness tmpdir and runs
``dovecot -F -c CONF`` in the foreground (no daemon, nothing under /etc or /var):

- listeners on 127.0.0.1 free ports: ``imap_port`` (plain + STARTTLS),
  ``imaps_port`` (implicit TLS), ``pop3_port`` (plain + STLS), ``pop3s_port``;
- TLS with a leaf from pki.py (``leaf=`` picks it; default localhost);
- one test user (``user``/``password``) from a passwd-file, mail in a maildir
  under the tmpdir (``maildir``), with a Sent mailbox marked \\Sent
  (RFC 6154 SPECIAL-USE) and a Junk one marked \\Junk;
- base_dir, state_dir and the log file (``log_path``) in the tmpdir.

The mail processes run as the user running the tests (root allowed through
first_valid_uid = 0); login processes as dovenull (Debian's package user) or
nobody.  ``deliver(raw, folder="INBOX")`` drops a message straight into the
maildir as a delivery agent would (new/ for INBOX).
"""

import os
import pwd
import socket
import time

import harness
import pki

__all__ = ["Dovecot", "available"]

DOVECOT = "/usr/sbin/dovecot"


def available():
    return os.path.exists(DOVECOT) and os.path.exists("/usr/lib/dovecot/imap") \
        and os.path.exists("/usr/lib/dovecot/pop3")


def _login_user():
    for name in ("dovenull", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise harness.Skip("no unprivileged user (dovenull, nobody) for Dovecot's login processes")


class Dovecot:
    def __init__(self, leaf=None, user="tester@example.test", password="s3cret pass",
                 sent_name="Sent"):
        if not available():
            raise harness.Skip("dovecot-imapd / dovecot-pop3d not installed")
        self.leaf = leaf or pki.get().localhost
        self.ca = pki.get().ca
        self.user = user
        self.password = password
        self.sent_name = sent_name
        self.dir = harness.tmpdir("pigeon-dovecot-")
        self.maildir = os.path.join(self.dir, "mail")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.imap_port = harness.free_port()
        self.imaps_port = harness.free_port()
        self.pop3_port = harness.free_port()
        self.pop3s_port = harness.free_port()
        self.host = harness.LOOPBACK
        self.proc = None

    def _write_config(self):
        d = self.dir
        base = os.path.join(d, "run")
        state = os.path.join(d, "state")
        for p in (base, state, self.maildir):
            os.makedirs(p, exist_ok=True)
        uid, gid = _mail_ids()
        self.uid, self.gid = uid, gid
        home = os.path.join(d, "home")
        os.makedirs(home, exist_ok=True)
        for p in (home, self.maildir):
            os.chown(p, uid, gid)
        passwd = os.path.join(d, "passwd")
        with open(passwd, "w") as f:
            # uid and gid come from mail_uid / mail_gid below: a passwd-file refuses uid 0,
            # and the tests may run as root.
            f.write("%s:{PLAIN}%s:::::\n" % (self.user, self.password))
        login = _login_user()
        conf = os.path.join(d, "dovecot.conf")
        me = pwd.getpwuid(os.getuid()).pw_name
        text = """
protocols = imap pop3
listen = 127.0.0.1
base_dir = {base}
state_dir = {state}
instance_name = pigeon-test-{port}
log_path = {log}
info_log_path = {log}
debug_log_path = {log}
default_login_user = {login}
default_internal_user = {me}
default_internal_group = {group}
first_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:{maildir}
mail_uid = {uid}
mail_gid = {gid}
mail_home = {home}
mail_privileged_group =
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
login_trusted_networks =
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
pop3_uidl_format = %08Xu%08Xv
namespace inbox {{
  inbox = yes
  separator = /
  mailbox {sent} {{
    special_use = \\Sent
    auto = create
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
}}
protocol imap {{
  mail_max_userip_connections = 50
}}
""".format(base=base, state=state, port=self.imap_port, log=self.log_path, login=login,
           me=me, group=_group_name(os.getgid()), uid=uid, gid=gid, home=home, maildir=self.maildir, cert=self.leaf.cert,
           key=self.leaf.key, passwd=passwd, imap=self.imap_port, imaps=self.imaps_port,
           pop3=self.pop3_port, pop3s=self.pop3s_port, sent=_quote(self.sent_name))
        with open(conf, "w") as f:
            f.write(text)
        # Dovecot's login processes (dovenull) read the key through the master; the
        # directory must be traversable for the unprivileged users.
        os.chmod(d, 0o755)
        return conf

    def start(self):
        conf = self._write_config()
        self.proc = harness.spawn([DOVECOT, "-F", "-c", conf])
        for port in (self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port):
            try:
                harness.wait_port(port, timeout=15, proc=self.proc)
            except AssertionError:
                raise AssertionError("dovecot did not start: %s\n%s" %
                                     (harness.read_log(self.proc), self.log()))
        return self

    def stop(self):
        if self.proc is not None:
            harness.stop(self.proc)
            self.proc = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the mailbox on disk ------------------------------------------------------------

    def folder_path(self, folder):
        """The maildir of a folder (INBOX is the root; others are .NAME, with
        Dovecot's modified-UTF-7 names on disk and '/' as '.')."""
        if folder.upper() == "INBOX":
            return self.maildir
        return os.path.join(self.maildir, "." + _mutf7(folder).replace("/", "."))

    def deliver(self, raw, folder="INBOX"):
        """Drops raw (bytes, CRLF or LF) into folder's new/ as an MDA would."""
        path = self.folder_path(folder)
        for p in (path,) + tuple(os.path.join(path, s) for s in ("tmp", "new", "cur")):
            if not os.path.isdir(p):
                os.makedirs(p)
                os.chown(p, self.uid, self.gid)
        name = "%d.P%dQ%d.pigeon-test" % (time.time(), os.getpid(), _counter())
        tmp = os.path.join(path, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(raw.replace(b"\r\n", b"\n"))
        os.chown(tmp, self.uid, self.gid)
        os.rename(tmp, os.path.join(path, "new", name))
        return name

    def messages(self, folder="INBOX"):
        """[(filename, flags, bytes)] of every message in folder (cur/ and new/)."""
        path = self.folder_path(folder)
        out = []
        for sub in ("new", "cur"):
            p = os.path.join(path, sub)
            if not os.path.isdir(p):
                continue
            for name in sorted(os.listdir(p)):
                flags = name.split(":2,", 1)[1] if ":2," in name else ""
                with open(os.path.join(p, name), "rb") as f:
                    out.append((name, flags, f.read()))
        return out


_count = [0]


def _counter():
    _count[0] += 1
    return _count[0]


def _mail_ids():
    """Dovecot never gives mail access to root: as root, the mail belongs to nobody."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def _group_name(gid):
    import grp
    return grp.getgrgid(gid).gr_name


def _quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mutf7(name):
    """RFC 3501 5.1.3 modified UTF-7 (how Dovecot names maildir folders on disk)."""
    import base64
    out = []
    run = []

    def flush():
        if run:
            b = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def imap_session(dc, lines):
    """Sends raw IMAP command lines over plaintext to dc (tests of the server itself)."""
    s = socket.create_connection((dc.host, dc.imap_port), timeout=5)
    try:
        out = s.recv(4096)
        for line in lines:
            s.sendall(line)
            time.sleep(0.1)
            out += s.recv(65536)
        return out
    finally:
        s.close()
