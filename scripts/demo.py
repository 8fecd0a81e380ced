"""make demo: one real send, end to end, on this machine.

Starts an independent SMTP server (Python's aiosmtpd) on 127.0.0.1 with STARTTLS and
AUTH PLAIN/LOGIN, on a certificate from a CA made for the demo; sends a multipart message
(text + HTML, a Chinese subject, an attachment with a Chinese name) with `pigeon send -v`;
shows pigeon's masked transcript and the message as the server received it; stops the
server.
"""
import os
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
import pki  # noqa: E402
import servers  # noqa: E402

pigeon = sys.argv[1]
user, password = "demo@pigeon.test", "demo-authorization-code"


def rule(title):
    print("\n\033[1m== %s ==\033[0m" % title if sys.stdout.isatty() else "\n== %s ==" % title)


work = tempfile.mkdtemp(prefix="pigeon-demo-")
report = os.path.join(work, "月度报告.csv")
with open(report, "w", encoding="utf-8") as f:
    f.write("月份,发送量\n十月,1200\n十一月,1350\n")
html = os.path.join(work, "body.html")
with open(html, "w", encoding="utf-8") as f:
    f.write("<html><body><h1>您好!</h1><p>这是 <b>pigeon</b> 发送的月度报告。</p>"
            "<p>Hello from <i>pigeon</i>.</p></body></html>\n")

p = pki.get()
with servers.AioSmtpd(tls="starttls", auth={user: password}, hostname="localhost") as srv:
    rule("server: aiosmtpd on 127.0.0.1:%d (STARTTLS, AUTH PLAIN LOGIN, CA %s)"
         % (srv.port, os.path.basename(p.ca)))
    argv = [pigeon, "send", "-v",
            "--host", "localhost", "--port", str(srv.port), "--tls", "starttls",
            "--ca-file", p.ca, "--user", user,
            "--from", "张三 <%s>" % user, "--to", "李四 <lisi@example.com>",
            "--subject", "月度报告 — monthly report",
            "--text", "您好,\n附件是十一月的月度报告。\n\nHello, the November report is attached.\n",
            "--html-file", html, "--attach", report]
    shown = ["PIGEON_PASSWORD=…"] + [a if " " not in a else repr(a) for a in argv[1:]]
    rule("pigeon " + " ".join(shown[1:]))
    env = dict(os.environ, PIGEON_PASSWORD=password)
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    rule("transcript (pigeon -v, stderr; credentials masked)")
    sys.stdout.write(proc.stderr.decode("utf-8", "replace"))
    rule("pigeon's result (stdout), exit code %d" % proc.returncode)
    sys.stdout.write(proc.stdout.decode("utf-8", "replace"))
    if proc.returncode != 0:
        sys.exit("demo failed: pigeon exited %d" % proc.returncode)
    [m] = srv.wait_messages(1, timeout=10)
    rule("what the server received: envelope")
    print("MAIL FROM:", m.mail_from, " RCPT TO:", ", ".join(m.rcpt_tos),
          " TLS:", m.tls_version, " AUTH user:", m.auth_user)
    rule("what the server received: raw message")
    sys.stdout.write(m.content.decode("utf-8", "replace").replace("\r\n", "\n"))
    rule("the same message as a mail client reads it (Python's email package)")
    msg = m.message
    for h in ("From", "To", "Subject"):
        print("%-8s %s" % (h + ":", msg[h]))
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        desc = part.get_content_type() + ("  attachment: %s" % name if name else "")
        print("-", desc)
        if part.get_content_maintype() == "text":
            text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8",
                                                        "replace")
            for line in text.splitlines():
                print("    " + line)
    assert password not in proc.stderr.decode("utf-8", "replace"), "password leaked"
rule("done: the server is stopped")
