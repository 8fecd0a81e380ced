"""SMTP peers for pigeon's integration tests, all on 127.0.0.1 only.

Each is a context manager with ``.port`` (and ``.host`` == "127.0.0.1") that
stops what it started on exit (and, as a fallback, at process exit):

- ``AioSmtpd``        aiosmtpd (in-process thread): STARTTLS / implicit TLS, AUTH,
                      records every accepted message (``.messages``).
- ``Stunnel``         stunnel4 subprocess wrapping a plaintext port in implicit TLS,
                      optionally limited to old TLS versions (TLS 1.0).
- ``SmtpSink``        Postfix smtp-sink subprocess dumping messages to a directory.
- ``ScriptedServer``  scripted SMTP fault server (threads) recording every byte.
- ``TlsScriptedServer`` the same with implicit TLS from the first byte.

See README.md for examples.
"""

import asyncio
import logging
import os
import re
import socket
import ssl
import threading
import time
import warnings

import harness
import pki

__all__ = [
    "AioSmtpd", "Stunnel", "SmtpSink", "ScriptedServer", "TlsScriptedServer",
    "Received", "server_context", "client_context", "reply", "greet", "ehlo_reply",
    "default_session", "multiline_reply", "long_line_reply", "unstuff",
]

LOOPBACK = harness.LOOPBACK

# aiosmtpd logs every session, and a traceback for each failed handshake a
# negative test provokes on purpose; keep test output readable unless asked.
logging.getLogger("mail.log").setLevel(
    logging.DEBUG if os.environ.get("PIGEON_TEST_VERBOSE") else logging.CRITICAL)


# ---------------------------------------------------------------------------
# TLS contexts
# ---------------------------------------------------------------------------

def server_context(leaf=None, *, cert=None, key=None, min_version=None,
                   max_version=None, ciphers=None):
    """A server-side SSLContext for ``leaf`` (default: pki.get().localhost).

    ``min_version``/``max_version`` are ssl.TLSVersion values; when either is
    below TLS 1.2 the security level is dropped to 0 (OpenSSL 3 refuses
    TLS 1.0/1.1 otherwise) unless ``ciphers`` is given.
    """
    if cert is None:
        leaf = leaf or pki.get().localhost
        cert, key = leaf.cert, leaf.key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        old = [v for v in (min_version, max_version)
               if v is not None and v < ssl.TLSVersion.TLSv1_2]
        if ciphers is None and old:
            ciphers = "DEFAULT:@SECLEVEL=0"
        if ciphers:
            ctx.set_ciphers(ciphers)
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(ca=None, *, check_hostname=True, min_version=None, max_version=None):
    """A client SSLContext trusting ``ca`` (default: the test root CA)."""
    ctx = ssl.create_default_context(cafile=ca or pki.get().ca)
    ctx.check_hostname = check_hostname
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if min_version is not None or max_version is not None:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
    return ctx


# ---------------------------------------------------------------------------
# aiosmtpd
# ---------------------------------------------------------------------------

class Received:
    """One message accepted by AioSmtpd.

    mail_from (str), rcpt_tos (list of str), mail_options / rcpt_options (lists
    of str, e.g. ['SIZE=123', 'BODY=8BITMIME']), content (bytes exactly as
    received, dot-unstuffed, CRLF line ends), helo (EHLO/HELO argument),
    tls (True if the session was encrypted), tls_version ('TLSv1.3'...),
    auth_user (str or None).
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def message(self):
        """content parsed with email (policy.default)."""
        return harness.parse(self.content)

    def __repr__(self):
        return "Received(from=%r, to=%r, %d bytes)" % (self.mail_from, self.rcpt_tos,
                                                       len(self.content))


class _AioHandler:
    def __init__(self, owner):
        self.owner = owner

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        verdict = self.owner.reject_rcpt.get(address)
        if verdict:
            return verdict
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content
        if content is None:
            content = envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        sslobj = server.transport.get_extra_info("ssl_object") if server.transport else None
        rec = Received(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
                       mail_options=list(envelope.mail_options),
                       rcpt_options=list(envelope.rcpt_options), content=content,
                       helo=session.host_name, tls=sslobj is not None,
                       tls_version=sslobj.version() if sslobj is not None else None,
                       auth_user=self.owner._auth_user.get(id(session)))
        with self.owner._cond:
            self.owner.messages.append(rec)
            self.owner._cond.notify_all()
        return self.owner.data_reply


class AioSmtpd:
    """aiosmtpd on 127.0.0.1 in a thread.

    tls: None (plaintext), 'starttls' (advertise STARTTLS), 'implicit' (TLS from
    the first byte).  auth: None (no AUTH) or {'user': 'password'}.
    require_tls_for_auth: AUTH only offered/accepted after TLS.
    require_starttls / auth_required: refuse mail before STARTTLS / AUTH.
    auth_mechs: subset of ('PLAIN', 'LOGIN') to offer.
    reject_rcpt: {address: '550 5.1.1 no such user'} replies for chosen RCPTs.
    data_reply: reply to the end of DATA (default 250).
    data_size_limit: SIZE advertised and enforced (0 = none).

    Attributes: port, host, messages (list of Received), auth_attempts (list of
    (mechanism, login, password, ok)).
    """

    def __init__(self, tls=None, auth=None, require_tls_for_auth=True, cert=None,
                 key=None, auth_mechs=("PLAIN", "LOGIN"), hostname="aiosmtpd.test",
                 require_starttls=False, auth_required=False, reject_rcpt=None,
                 data_reply="250 2.0.0 OK queued", data_size_limit=33554432,
                 smtputf8=True, port=None):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if tls not in (None, "starttls", "implicit"):
            raise ValueError("tls must be None, 'starttls' or 'implicit'")
        self.host = LOOPBACK
        self.port = port or harness.free_port()
        self.messages = []
        self.auth_attempts = []
        self.reject_rcpt = dict(reject_rcpt or {})
        self.data_reply = data_reply
        self._auth_user = {}
        self._cond = threading.Condition()
        ctx = None
        if tls:
            if cert is None:
                leaf = pki.get().localhost
                cert, key = leaf.cert, leaf.key
            ctx = server_context(cert=cert, key=key)
        kwargs = dict(server_hostname=hostname, data_size_limit=data_size_limit,
                      enable_SMTPUTF8=smtputf8, auth_require_tls=require_tls_for_auth,
                      auth_required=auth_required, timeout=60)
        if tls == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=require_starttls)
        elif tls == "implicit":
            kwargs.update(ssl_context=ctx)
        if auth is not None:
            users = dict(auth)

            def authenticator(server, session, envelope, mechanism, auth_data):
                login = password = None
                ok = False
                if isinstance(auth_data, LoginPassword):
                    login = auth_data.login.decode("utf-8", "replace")
                    password = auth_data.password.decode("utf-8", "replace")
                    ok = login in users and users[login] == password
                self.auth_attempts.append((mechanism, login, password, ok))
                if ok:
                    self._auth_user[id(session)] = login
                return AuthResult(success=ok, handled=False, auth_data=login)

            kwargs["authenticator"] = authenticator
            kwargs["auth_exclude_mechanism"] = [
                m for m in ("PLAIN", "LOGIN") if m not in set(auth_mechs)]
        else:
            # aiosmtpd offers AUTH whenever mechanisms exist; hide them all.
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._controller = Controller(_AioHandler(self), hostname=LOOPBACK,
                                          port=self.port, **kwargs)
        self._started = False

    def start(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._controller.start()
        self._started = True
        harness.at_exit(self.stop)
        return self

    def stop(self):
        if self._started:
            self._started = False
            try:
                self._controller.stop()
            except (AssertionError, RuntimeError):
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_messages(self, n, timeout=10.0):
        """Wait until at least ``n`` messages arrived; return .messages."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("AioSmtpd: %d of %d messages after %.0fs"
                                         % (len(self.messages), n, timeout))
                self._cond.wait(left)
            return list(self.messages)


# ---------------------------------------------------------------------------
# stunnel
# ---------------------------------------------------------------------------

class Stunnel:
    """stunnel4 on 127.0.0.1:accept_port giving implicit TLS in front of the
    plaintext server at 127.0.0.1:connect_port.

    cert/key default to pki.get().localhost.  tls_max / tls_min: stunnel
    version names ('TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'); with tls_max
    'TLSv1' or 'TLSv1.1' the server speaks only that (old) version, with
    ciphers "DEFAULT:@SECLEVEL=0" so OpenSSL 3 agrees to it.
    """

    def __init__(self, accept_port=None, connect_port=None, cert=None, key=None, *,
                 tls_max=None, tls_min=None, ciphers=None):
        if connect_port is None:
            raise ValueError("connect_port is required")
        if cert is None:
            leaf = pki.get().localhost
            cert, key = leaf.cert, leaf.key
        self.host = LOOPBACK
        self.port = accept_port or harness.free_port()
        self.connect_port = connect_port
        old = tls_max in ("TLSv1", "TLSv1.1")
        if old and tls_min is None:
            tls_min = tls_max
        if old and ciphers is None:
            ciphers = "DEFAULT:@SECLEVEL=0"
        self.dir = harness.tmpdir("pigeon-stunnel-")
        lines = ["foreground = yes", "pid =", "debug = 5", "",
                 "[pigeon-test]",
                 "accept = %s:%d" % (LOOPBACK, self.port),
                 "connect = %s:%d" % (LOOPBACK, connect_port),
                 "cert = %s" % cert, "key = %s" % key]
        if tls_min:
            lines.append("sslVersionMin = %s" % tls_min)
        if tls_max:
            lines.append("sslVersionMax = %s" % tls_max)
        if ciphers:
            lines.append("ciphers = %s" % ciphers)
            if "SECLEVEL=0" in ciphers:
                lines.append("securityLevel = 0")
        self.config = os.path.join(self.dir, "stunnel.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        self.proc = harness.spawn(["stunnel4", self.config])
        harness.wait_port(self.port, timeout=10, proc=self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            harness.stop(self.proc)
            self.proc = None

    def log(self):
        return harness.read_log(self.proc) if self.proc else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------
# Postfix smtp-sink
# ---------------------------------------------------------------------------

class SinkMessage:
    """One transaction dumped by smtp-sink.

    client_addr, proto ('SMTP'/'ESMTP'), helo, mail_args (e.g. '<a@x> SIZE=12'),
    rcpt_args (list), content (bytes, LF line ends, dot-unstuffed, without
    smtp-sink's own Received header), path.
    """

    _HEADERS = {b"X-Client-Addr": "client_addr", b"X-Client-Proto": "proto",
                b"X-Helo-Args": "helo", b"X-Mail-Args": "mail_args"}

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            raw = f.read()
        self.raw = raw
        self.client_addr = self.proto = self.helo = self.mail_args = None
        self.rcpt_args = []
        lines = raw.split(b"\n")
        i = 0
        while i < len(lines):
            name, _, value = lines[i].partition(b": ")
            if name == b"X-Rcpt-Args":
                self.rcpt_args.append(value.decode("utf-8", "replace"))
            elif name in self._HEADERS:
                setattr(self, self._HEADERS[name], value.decode("utf-8", "replace"))
            else:
                break
            i += 1
        # smtp-sink prepends its own Received header (with folded lines).
        if i < len(lines) and lines[i].startswith(b"Received:") and b"(smtp-sink)" in \
                b"\n".join(lines[i:i + 3]):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
        body = b"\n".join(lines[i:])
        # smtp-sink appends one empty line after the message.
        if body.endswith(b"\n\n"):
            body = body[:-1]
        self.content = body

    @property
    def mail_from(self):
        m = re.match(r"<([^>]*)>", self.mail_args or "")
        return m.group(1) if m else None

    @property
    def rcpt_tos(self):
        return [re.match(r"<([^>]*)>", r).group(1) for r in self.rcpt_args
                if re.match(r"<([^>]*)>", r)]

    @property
    def message(self):
        return harness.parse(self.content)


class SmtpSink:
    """Postfix /usr/sbin/smtp-sink on 127.0.0.1 (PIPELINING, 8BITMIME, ...
    announced), dumping each transaction into ``dump_dir`` (default: a tmpdir).

    extra_args: more smtp-sink options, e.g. ['-f', 'rcpt'] to reject RCPT.
    """

    def __init__(self, dump_dir=None, hostname="smtp-sink.test", extra_args=(), port=None):
        self.host = LOOPBACK
        self.port = port or harness.free_port()
        self.dump_dir = dump_dir or harness.tmpdir("pigeon-sink-")
        os.makedirs(self.dump_dir, exist_ok=True)
        # smtp-sink must drop to an unprivileged user when run as root.
        os.chmod(self.dump_dir, 0o777)
        self.args = ["/usr/sbin/smtp-sink", "-h", hostname,
                     "-d", os.path.join(self.dump_dir, "msg.")]
        if os.geteuid() == 0:
            self.args[1:1] = ["-u", "nobody"]
        self.args += list(extra_args) + ["%s:%d" % (LOOPBACK, self.port), "100"]
        self.proc = None

    def start(self):
        self.proc = harness.spawn(self.args)
        harness.wait_port(self.port, timeout=10, proc=self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            harness.stop(self.proc)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _paths(self):
        return sorted((os.path.join(self.dump_dir, n) for n in os.listdir(self.dump_dir)
                       if n.startswith("msg.")), key=os.path.getmtime)

    @property
    def messages(self):
        """All dumped transactions (oldest first) as SinkMessage."""
        return [SinkMessage(p) for p in self._paths()]

    def wait_messages(self, n, timeout=10.0):
        """Wait until ``n`` dumps exist and stopped growing; return messages."""
        harness.wait_for(lambda: len(self._paths()) >= n, timeout,
                         what="%d smtp-sink dumps" % n)
        sizes = None
        while True:
            now = [os.path.getsize(p) for p in self._paths()]
            if now == sizes:
                return self.messages
            sizes = now
            time.sleep(0.1)


# ---------------------------------------------------------------------------
# Scripted fault server
# ---------------------------------------------------------------------------

def _crlf(x):
    if isinstance(x, str):
        x = x.encode("utf-8")
    if not x.endswith(b"\n"):
        x += b"\r\n"
    return x


def reply(code, *lines):
    """Multi-line reply bytes: reply(250, 'a', 'b') -> b'250-a\\r\\n250 b\\r\\n'."""
    lines = lines or ("",)
    out = []
    for i, text in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out.append(("%d%s%s\r\n" % (code, sep, text)).encode("utf-8"))
    return b"".join(out)


def greet(code=220, text="scripted.test ESMTP ready"):
    """Greeting step: ('send', b'220 scripted.test ESMTP ready\\r\\n')."""
    return ("send", reply(code, text))


def ehlo_reply(caps=("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"),
               name="scripted.test", code=250):
    """EHLO reply bytes advertising ``caps`` (strings like 'AUTH PLAIN LOGIN')."""
    return reply(code, name, *caps)


def multiline_reply(code=250, n=10000, text="line %d"):
    """An ``n``-line reply (e.g. the 10,000-line EHLO reply fault)."""
    return reply(code, *[text % i for i in range(n)])


def long_line_reply(code=250, size=1 << 20):
    """A single reply line of about ``size`` bytes (the 1 MB line fault)."""
    return ("%d " % code).encode() + b"x" * size + b"\r\n"


def unstuff(data):
    """Undo RFC 5321 4.5.2 dot-stuffing of DATA bytes (as in .data)."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n")


def default_session(greeting="220 scripted.test ESMTP ready",
                    caps=("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"),
                    ehlo=None, mail="250 2.1.0 sender ok", rcpt="250 2.1.5 recipient ok",
                    data="354 go ahead", eod="250 2.0.0 queued as 1234",
                    quit="221 2.0.0 bye", auth=None):
    """Happy-path script; each reply (str/bytes, CRLF added) can be replaced.

    rcpt: one reply or a list (one per expected RCPT).  ehlo: full EHLO reply
    bytes (default from ``caps``).  auth: optional list of steps inserted after
    EHLO (e.g. [('expect', rb'^AUTH PLAIN '), ('send', b'235 ok\\r\\n')]).
    If ``data`` is not a 354 the message body is not read.
    """
    rcpts = rcpt if isinstance(rcpt, (list, tuple)) else [rcpt]
    steps = [("send", _crlf(greeting)),
             ("expect", rb"^EHLO "),
             ("send", ehlo if ehlo is not None else ehlo_reply(caps))]
    steps += list(auth or [])
    steps += [("expect", rb"^MAIL FROM:"), ("send", _crlf(mail))]
    for r in rcpts:
        steps += [("expect", rb"^RCPT TO:"), ("send", _crlf(r))]
    steps += [("expect", rb"^DATA\r\n"), ("send", _crlf(data))]
    if _crlf(data).startswith(b"354"):
        steps += [("recv_data",), ("send", _crlf(eod))]
    steps += [("expect", rb"^QUIT\r\n"), ("send", _crlf(quit)), ("close",)]
    return steps


class _Eof(Exception):
    pass


class _StepTimeout(Exception):
    pass


class _Stopped(Exception):
    pass


class Connection:
    """State of one accepted connection (see ScriptedServer.connections).

    raw: every byte received; lines: lines read by expect/recv_line;
    data: DATA payloads as on the wire (dot-stuffed, without the final
    '.\\r\\n'); tls_version: after a handshake; errors: this connection's
    script errors; injected: plaintext that followed STARTTLS in one read.
    """

    def __init__(self, server, index, sock):
        self.server = server
        self.index = index
        self.sock = sock
        self.buf = bytearray()
        self.raw = bytearray()
        self.lines = []
        self.data = []
        self.errors = []
        self.injected = b""
        self.tls_version = None
        self.closed_by_client = False
        self.done = threading.Event()

    # -- low-level I/O -----------------------------------------------------
    def _fill(self, deadline):
        """Read more bytes into buf; raise _Eof/_StepTimeout/_Stopped."""
        while True:
            if self.server._stopping.is_set():
                raise _Stopped()
            left = deadline - time.monotonic()
            if left <= 0:
                raise _StepTimeout()
            self.sock.settimeout(min(left, 0.2))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (ConnectionError, ssl.SSLError, OSError):
                self.closed_by_client = True
                raise _Eof()
            if not chunk:
                self.closed_by_client = True
                raise _Eof()
            self.buf += chunk
            self.raw += chunk
            self.server._note_bytes()
            return

    def read_line(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                self.lines.append(line)
                return line
            self._fill(deadline)

    def read_until(self, marker, timeout, at_start=None):
        deadline = time.monotonic() + timeout
        while True:
            if at_start is not None and self.buf.startswith(at_start):
                del self.buf[:len(at_start)]
                return None
            i = self.buf.find(marker)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(marker)]
                return out
            self._fill(deadline)

    def send(self, data):
        self.sock.settimeout(self.server.step_timeout)
        self.sock.sendall(data)

    def sleep(self, seconds):
        if self.server._stopping.wait(seconds):
            raise _Stopped()

    def error(self, text):
        self.errors.append(text)
        self.server.errors.append("conn %d: %s" % (self.index, text))


class ScriptedServer:
    """Scripted SMTP server on 127.0.0.1, one thread per connection.

    script:  list of steps run for every connection; or
    scripts: list of scripts, the i-th for the i-th connection (connections
             beyond the list are closed at once and counted in .extra_connections).
    step_timeout: bound for each reading step (default 10 s).
    linger: after the script ends without ('close',), keep reading until the
             client closes or ``linger`` seconds pass, so trailing bytes
             (e.g. QUIT) are recorded.

    Steps (tuples):
      ('send', bytes)               send bytes as they are
      ('send_after', secs, bytes)   sleep then send
      ('send_chunks', [b1, b2..], secs)  send pieces with a pause in between
      ('expect', regex[, timeout])  read one line; error if re.search (case-
                                    insensitive) fails; the script goes on
      ('recv_line',)                read one line, no check
      ('recv_data',)                read DATA payload up to CRLF.CRLF (.data)
      ('drain', secs)               read whatever comes for secs (or to EOF)
      ('expect_eof'[, timeout])     wait for the client to close (error if not)
      ('stall', secs)               do nothing for secs
      ('starttls', ctx)             TLS handshake server-side (ctx None: default)
      ('close',)                    close the connection (ends the script)
      ('reset',)                    close with TCP RST (ends the script)
      ('call', fn)                  fn(connection) for anything else

    Results: .received (all bytes from all connections, in order), .connections
    (Connection objects), .errors (list of str), .data (all DATA payloads).
    """

    implicit_tls = None

    def __init__(self, script=None, *, scripts=None, step_timeout=10.0, linger=1.0,
                 port=None):
        if (script is None) == (scripts is None):
            raise ValueError("give exactly one of script= or scripts=")
        self.script = script
        self.scripts = scripts
        self.step_timeout = step_timeout
        self.linger = linger
        self.host = LOOPBACK
        self.port = port or 0
        self.connections = []
        self.errors = []
        self.extra_connections = 0
        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._threads = []
        self._listener = None

    # -- lifecycle -----------------------------------------------------------
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, self.port))
        s.listen(16)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        self._listener = s
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        harness.at_exit(self.stop)
        return self

    def stop(self):
        self._stopping.set()
        for t in list(self._threads):
            t.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- results -------------------------------------------------------------
    @property
    def received(self):
        with self._lock:
            return b"".join(bytes(c.raw) for c in self.connections)

    @property
    def data(self):
        return [d for c in self.connections for d in c.data]

    def commands(self):
        """All client lines (CRLF-split) of .received, as bytes without CRLF."""
        return self.received.split(b"\r\n")[:-1] if self.received else []

    def wait_connections(self, n, timeout=10.0):
        """Wait until ``n`` connections were accepted."""
        return harness.wait_for(lambda: len(self.connections) >= n, timeout,
                                what="%d connections" % n)

    def wait_done(self, n=1, timeout=15.0):
        """Wait until ``n`` connections have finished their scripts."""
        self.wait_connections(n, timeout)
        deadline = time.monotonic() + timeout
        for c in list(self.connections)[:n]:
            if not c.done.wait(max(0.0, deadline - time.monotonic())):
                raise AssertionError("scripted connection %d still running" % c.index)
        return self.connections[:n]

    def check(self):
        """Raise AssertionError if any script step failed."""
        if self.errors:
            raise AssertionError("scripted server errors: %s\nreceived: %r"
                                 % ("; ".join(self.errors), self.received[-2000:]))

    def _note_bytes(self):
        with self._lock:
            self._lock.notify_all()

    # -- machinery -------------------------------------------------------------
    def _script_for(self, index):
        if self.scripts is not None:
            return self.scripts[index] if index < len(self.scripts) else None
        return self.script

    def _accept_loop(self):
        index = 0
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            script = self._script_for(index)
            if script is None:
                self.extra_connections += 1
                sock.close()
                continue
            conn = Connection(self, index, sock)
            with self._lock:
                self.connections.append(conn)
            index += 1
            t = threading.Thread(target=self._serve, args=(conn, script), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn, script):
        try:
            if self.implicit_tls is not None:
                self._handshake(conn, self.implicit_tls)
            for step in script:
                if self._run_step(conn, step):
                    return
            self._linger(conn)
        except _Stopped:
            pass
        except _StepTimeout:
            conn.error("timed out in step %r; buffered %r" % (step_name(conn), bytes(conn.buf)))
        except _Eof:
            conn.error("client closed the connection during step %r" % step_name(conn))
        except Exception as e:  # a broken step must not hang the test
            conn.error("step %r raised %s: %s" % (step_name(conn), type(e).__name__, e))
        finally:
            try:
                if isinstance(conn.sock, ssl.SSLSocket):
                    # Send close_notify so clients see a clean TLS end.
                    conn.sock.settimeout(1.0)
                    conn.sock = conn.sock.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass
            try:
                conn.sock.close()
            except OSError:
                pass
            conn.done.set()

    def _linger(self, conn):
        deadline = time.monotonic() + self.linger
        try:
            while time.monotonic() < deadline:
                conn._fill(deadline)
        except (_Eof, _StepTimeout):
            pass

    def _handshake(self, conn, ctx):
        if ctx is None:
            ctx = server_context()
        conn.sock.settimeout(self.step_timeout)
        try:
            conn.sock = ctx.wrap_socket(conn.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            conn.error("TLS handshake failed: %s" % e)
            conn.tls_error = e
            raise _Stopped()
        conn.tls_version = conn.sock.version()

    def _run_step(self, conn, step):
        """Run one step; return True when the script must end here."""
        conn.current = step
        kind = step[0]
        timeout = self.step_timeout
        if kind == "send":
            conn.send(step[1])
        elif kind == "send_after":
            conn.sleep(step[1])
            conn.send(step[2])
        elif kind == "send_chunks":
            for i, piece in enumerate(step[1]):
                if i:
                    conn.sleep(step[2] if len(step) > 2 else 0.2)
                conn.send(piece)
        elif kind == "expect":
            if len(step) > 2:
                timeout = step[2]
            line = conn.read_line(timeout)
            # SMTP verbs are case-insensitive (RFC 5321 2.4); so is expect.
            if not re.search(step[1], line, re.IGNORECASE):
                conn.error("expected %r, got %r" % (step[1], line))
        elif kind == "recv_line":
            conn.read_line(step[1] if len(step) > 1 else timeout)
        elif kind == "recv_data":
            # The CRLF before "." ends the last line and belongs to the payload;
            # a "." right after DATA's reply is an empty message.
            body = conn.read_until(b"\r\n.\r\n", step[1] if len(step) > 1 else timeout,
                                   at_start=b".\r\n")
            conn.data.append(b"" if body is None else body + b"\r\n")
        elif kind == "drain":
            deadline = time.monotonic() + step[1]
            try:
                while True:
                    conn._fill(deadline)
            except (_StepTimeout, _Eof):
                pass
        elif kind == "expect_eof":
            deadline = time.monotonic() + (step[1] if len(step) > 1 else timeout)
            try:
                while True:
                    conn._fill(deadline)
            except _Eof:
                return True
            except _StepTimeout:
                conn.error("client did not close the connection")
                return True
        elif kind == "stall":
            conn.sleep(step[1])
        elif kind == "starttls":
            if conn.buf:
                conn.injected = bytes(conn.buf)
                conn.error("plaintext after STARTTLS before handshake: %r" % conn.injected)
                del conn.buf[:]
            self._handshake(conn, step[1] if len(step) > 1 else None)
        elif kind == "close":
            return True
        elif kind == "reset":
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return True
        elif kind == "call":
            step[1](conn)
        else:
            raise ValueError("unknown step %r" % (kind,))
        return False


def step_name(conn):
    step = getattr(conn, "current", None)
    return step[0] if step else None


class TlsScriptedServer(ScriptedServer):
    """ScriptedServer with implicit TLS from the first byte (port 465 style).

    leaf: pki Leaf to present (default localhost); context: a ready server
    SSLContext (overrides leaf/min_version/max_version/ciphers);
    min_version/max_version: ssl.TLSVersion limits, e.g. TLSv1 for both.
    A failed handshake is recorded in .errors and ends that connection.
    """

    def __init__(self, script=None, *, leaf=None, context=None, min_version=None,
                 max_version=None, ciphers=None, **kw):
        super().__init__(script, **kw)
        self.implicit_tls = context or server_context(
            leaf, min_version=min_version, max_version=max_version, ciphers=ciphers)
