"""`pigeon sendmail` and the `sendmail` symlink against an independent SMTP server
(aiosmtpd on 127.0.0.1, plaintext, no AUTH), configured through a file named by
PIGEON_CONFIG: what the server receives in the envelope (MAIL FROM, RCPT TO) and in the
message, for the ways real programs call sendmail -- cron (MAILTO), git send-email
(--sendmail-cmd: `sendmail -i RECIPIENTS`), PHP's mail() (`sendmail -t -i`) -- and for
the options: -t (To/Cc/Bcc, Bcc removed from the message but kept in the envelope,
argument recipients added as Postfix does), -f/-r, -F, -i/-oi and the lone "." line,
Date and Message-ID added when missing and kept when present, and the refusals
(64 usage, 65 bad input) with nothing sent.
"""

import email.utils
import os
import re
import stat

import harness
import servers
from harness import test

ACCOUNT_FROM = "Pigeon Cron <cron@example.com>"
OTHER_FROM = "other@example.net"


def config_for(srv):
    """A configuration file (mode 600) whose default account points at srv."""
    d = harness.tmpdir("pigeon-sendmail-")
    path = os.path.join(d, "config")
    with open(path, "w") as f:
        f.write("# written by test_sendmail.py\n"
                "default_account = main\n"
                "[account main]\n"
                "host = 127.0.0.1\n"
                "port = %d\n"
                "tls = none\n"
                "from = %s\n"
                "\n"
                "[account other]\n"
                "host = 127.0.0.1\n"
                "port = %d\n"
                "tls = none\n"
                "from = %s\n" % (srv.port, ACCOUNT_FROM, srv.port, OTHER_FROM))
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path


def sendmail(srv, *args, input, via="symlink", env=None):
    """Runs sendmail (the symlink in the build dir, or `pigeon sendmail`) with srv's
    configuration; returns (rc, stdout, stderr)."""
    if via == "symlink":
        link = os.path.join(harness.build_dir(), "sendmail")
        assert os.path.islink(link), "%s is not a symlink" % link
        argv = [link]
    else:
        argv = [harness.pigeon_path(), "sendmail"]
    full_env = {"PIGEON_CONFIG": config_for(srv), "PIGEON_PASSWORD": None, "TZ": "UTC"}
    full_env.update(env or {})
    if isinstance(input, str):
        input = input.encode()
    return harness.run_cmd(argv + list(args), input=input, env=full_env)


def sent(srv, *args, input, via="symlink", env=None):
    """Runs sendmail, expects success, returns the one message the server received."""
    rc, out, err = sendmail(srv, *args, input=input, via=via, env=env)
    assert rc == 0, "exit %d, stderr %r" % (rc, err)
    # Like sendmail(8), nothing on stdout on success: cron would mail it to the user.
    assert out == b"", out
    [m] = srv.wait_messages(1)
    check_wire(m)
    return m


def refused(srv, status, *args, input, says):
    """Runs sendmail, expects exit status and one stderr line containing says, and that
    nothing reached the server."""
    rc, out, err = sendmail(srv, *args, input=input)
    assert rc == status, "exit %d (wanted %d), stderr %r" % (rc, status, err)
    lines = err.decode("utf-8", "replace").splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert srv.messages == []


def check_wire(m):
    """What every message sendmail sends must be: CRLF only, one Date, one Message-ID,
    no Bcc field, and the declared SIZE (when the client declares one) exact."""
    c = m.content
    assert b"\n" not in c.replace(b"\r\n", b""), "bare LF or CR in %r" % c[:200]
    head = c.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].strip().lower() for line in head.split(b"\r\n")
             if line and line[:1] not in (b" ", b"\t")]
    assert names.count(b"date") == 1, names
    assert names.count(b"message-id") == 1, names
    assert b"bcc" not in names, names
    for opt in m.mail_options:
        if opt.upper().startswith("SIZE="):
            assert int(opt[5:]) == len(c), (opt, len(c))


def header_block(m):
    return m.content.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def body_of(m):
    return m.content.split(b"\r\n\r\n", 1)[1]


# ---- -t, Bcc ----

@test
def t_reads_to_cc_bcc_and_strips_every_bcc_line():
    msg = ("From: Alice <alice@example.com>\n"
           "To: bob@example.org\n"
           "Bcc: hidden1@example.net,\n"
           "  hidden2@example.net\n"
           "Cc: Carol <carol@example.org>,\n"
           "\tdave@example.org\n"
           "Subject: team update\n"
           "bcc: hidden3@example.net\n"
           "\n"
           "Hello team.\n")
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-t", "-i", input=msg)
    assert sorted(m.rcpt_tos) == sorted([
        "bob@example.org", "hidden1@example.net", "hidden2@example.net",
        "carol@example.org", "dave@example.org", "hidden3@example.net"])
    assert b"hidden" not in m.content.lower()
    assert m.mail_from == "alice@example.com"
    head = header_block(m)
    # The other fields arrive byte for byte, folding included, in CRLF.
    assert head.startswith(b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
                           b"Cc: Carol <carol@example.org>,\r\n\tdave@example.org\r\n"
                           b"Subject: team update\r\n"), head
    assert body_of(m) == b"Hello team.\r\n"


@test
def t_with_only_bcc():
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-t", input="From: a@example.com\nBcc: secret@example.org\n"
                                  "Subject: s\n\nbody\n")
    assert m.rcpt_tos == ["secret@example.org"]
    assert b"secret" not in m.content


@test
def t_adds_argument_recipients_once_each():
    """Postfix sendmail(1): with -t, command-line recipients are added to the header
    ones. A recipient named twice is sent to once."""
    msg = "From: a@example.com\nTo: b@example.org, c@example.org\nSubject: s\n\nx\n"
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-t", "-i", "extra@example.net", "b@example.org", input=msg)
    assert sorted(m.rcpt_tos) == ["b@example.org", "c@example.org", "extra@example.net"]


@test
def without_t_only_arguments_are_recipients():
    msg = "From: a@example.com\nTo: header-only@example.org\nBcc: bcc@example.org\n" \
          "Subject: s\n\nx\n"
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-i", "arg@example.net", input=msg)
    assert m.rcpt_tos == ["arg@example.net"]
    assert m.message["To"] == "header-only@example.org"
    assert b"bcc@example.org" not in m.content  # Bcc is removed in every mode


@test
def t_groups_and_encoded_display_names():
    msg = ("From: a@example.com\n"
           "To: Team: one@example.org, two@example.org;,\n"
           " =?UTF-8?Q?Zhang=2C_San?= <zs@example.cn>\n"
           "Cc: =?UTF-8?B?5byg5LiJ?= <zhangsan@example.cn>, undisclosed-recipients:;\n"
           "Subject: s\n\nx\n")
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-t", input=msg)
    assert sorted(m.rcpt_tos) == ["one@example.org", "two@example.org", "zhangsan@example.cn",
                                  "zs@example.cn"]


# ---- Date, Message-ID, From ----

@test
def date_and_message_id_added_when_missing():
    msg = "From: Alice <alice@example.com>\nTo: b@example.org\nSubject: s\n\nx\n"
    with servers.AioSmtpd() as srv:
        m1 = sent(srv, "-t", input=msg, env={"TZ": "UTC-8"})  # POSIX: 8 hours east
        srv.messages.clear()
        m2 = sent(srv, "-t", input=msg, env={"TZ": "UTC+5"})
    for m, zone in ((m1, "+0800"), (m2, "-0500")):
        date = m.message["Date"]
        assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} \w{3} \d{4} "
                            r"\d\d:\d\d:\d\d " + re.escape(zone), str(date)), date
        assert email.utils.parsedate_to_datetime(str(date)).utcoffset() is not None
    ids = [m.message["Message-ID"] for m in (m1, m2)]
    for mid in ids:
        assert re.fullmatch(r"<[0-9A-Za-z]{20,}@example\.com>", mid), mid
    assert ids[0] != ids[1]


@test
def date_and_message_id_kept_when_present():
    msg = ("Date: Mon, 1 Jan 2024 09:30:00 +0100\n"
           "From: alice@example.com\n"
           "message-id: <keep.me@example.com>\n"
           "To: b@example.org\n"
           "Subject: s\n\nx\n")
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-t", input=msg)
    assert m.content == msg.replace("\n", "\r\n").encode()


@test
def f_sets_mail_from_and_keeps_the_from_field():
    msg = "From: Alice <alice@example.com>\nTo: b@example.org\nSubject: s\n\nx\n"
    for args in (("-f", "bounces@example.org"), ("-fbounces@example.org",),
                 ("-r", "bounces@example.org")):
        with servers.AioSmtpd() as srv:
            m = sent(srv, "-t", *args, input=msg)
        assert m.mail_from == "bounces@example.org", args
        assert m.message["From"] == "Alice <alice@example.com>"


@test
def F_names_the_added_from():
    msg = "To: b@example.org\nSubject: s\n\nx\n"
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-t", "-F", "Backup Job", "-f", "backup@example.org", input=msg)
    [addr] = m.message["From"].addresses
    assert (addr.display_name, addr.addr_spec) == ("Backup Job", "backup@example.org")
    assert m.mail_from == "backup@example.org"
    # Without -f the account's address is used, with the -F name; non-ASCII is encoded.
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-t", "-F\u5f20\u4e09", input=msg)
    [addr] = m.message["From"].addresses
    assert (addr.display_name, addr.addr_spec) == ("\u5f20\u4e09", "cron@example.com")
    assert m.mail_from == "cron@example.com"
    assert max(header_block(m)) < 0x80  # 7-bit header (RFC 2047 encoded name)


@test
def F_does_not_change_an_existing_from():
    msg = "From: Alice <alice@example.com>\nTo: b@example.org\nSubject: s\n\nx\n"
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-t", "-F", "Somebody Else", input=msg)
    assert m.message["From"] == "Alice <alice@example.com>"
    assert b"Somebody" not in m.content


@test
def account_option_picks_the_account():
    with servers.AioSmtpd() as srv:
        m = sent(srv, "--account", "other", "-i", "b@example.org",
                 input="Subject: s\n\nx\n", via="pigeon")
    assert m.mail_from == OTHER_FROM
    assert m.message["From"].addresses[0].addr_spec == OTHER_FROM


# ---- the lone "." line ----

DOTTED = "From: a@example.com\nSubject: dots\n\nline1\n..\n.x\n.\nline after the dot\n"


@test
def lone_dot_ends_the_message_without_i():
    with servers.AioSmtpd() as srv:
        m = sent(srv, "b@example.org", input=DOTTED)
    assert body_of(m) == b"line1\r\n..\r\n.x\r\n"


@test
def lone_dot_is_content_with_i_and_oi():
    for flag in ("-i", "-oi"):
        with servers.AioSmtpd() as srv:
            m = sent(srv, flag, "b@example.org", input=DOTTED)
        assert body_of(m) == b"line1\r\n..\r\n.x\r\n.\r\nline after the dot\r\n", flag


# ---- how programs call it ----

@test
def cron_style():
    """Debian cron: sendmail -i -FCronDaemon -B8BITMIME -oem MAILTO, a message with
    neither From, Date nor Message-ID, and no final newline."""
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-i", "-FCronDaemon", "-B8BITMIME", "-oem", "admin@example.org",
                 input="Subject: x\n\nbody")
    assert m.rcpt_tos == ["admin@example.org"]
    assert m.mail_from == "cron@example.com"
    [addr] = m.message["From"].addresses
    assert (addr.display_name, addr.addr_spec) == ("CronDaemon", "cron@example.com")
    assert m.message["Subject"] == "x"
    assert body_of(m) == b"body\r\n"


PATCH = """From: Alice Dev <alice@example.com>
To: list@example.org
Cc: Bob Maintainer <bob@example.org>
Subject: [PATCH v2 1/1] lib: fix the frobnicator
Date: Tue, 14 Nov 2023 22:13:20 +0100
Message-ID: <20231114221320.12345-1-alice@example.com>
X-Mailer: git-send-email 2.43.0
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

The frobnicator forgot the last element. Commit message lines may be odd:
.
..
From here on it is fixed.

Signed-off-by: Alice Dev <alice@example.com>
---
 lib/frob.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/lib/frob.c b/lib/frob.c
index 1234567..89abcde 100644
--- a/lib/frob.c
+++ b/lib/frob.c
@@ -1,3 +1,3 @@
 int frob(int n)
-{ return n - 1; }
+{ return n; }
 /* caf\u00e9 */
--\x20
2.43.0
"""


@test
def git_send_email_style():
    """git send-email --sendmail-cmd=sendmail: `sendmail -i RECIPIENTS` with the whole
    patch email; it arrives byte for byte (CRLF), envelope as given."""
    data = PATCH.encode("utf-8")
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-i", "list@example.org", "bob@example.org", input=data)
    assert m.rcpt_tos == ["list@example.org", "bob@example.org"]
    assert m.mail_from == "alice@example.com"
    assert m.content == data.replace(b"\n", b"\r\n")
    # The patch holds UTF-8 (8bit): the server offers 8BITMIME, so it is declared.
    assert "BODY=8BITMIME" in [o.upper() for o in m.mail_options], m.mail_options


@test
def php_mail_style():
    """PHP mail(): sendmail_path "sendmail -t -i"; PHP writes To and Subject first, then
    the extra headers, and LF line endings."""
    msg = ("To: customer@example.org\n"
           "Subject: Your order\n"
           "X-PHP-Originating-Script: 33:order.php\n"
           "From: shop@example.com\n"
           "Reply-To: support@example.com\n"
           "\n"
           "Thank you.\n")
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-t", "-i", input=msg)
    assert m.rcpt_tos == ["customer@example.org"]
    assert m.mail_from == "shop@example.com"
    assert header_block(m).startswith(msg.split("\n\n")[0].replace("\n", "\r\n").encode())
    assert body_of(m) == b"Thank you.\r\n"


@test
def symlink_and_subcommand_send_the_same():
    msg = ("From: a@example.com\nTo: b@example.org\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
           "Message-ID: <same@example.com>\nSubject: s\n\nbody\n")
    got = []
    for via in ("symlink", "pigeon"):
        with servers.AioSmtpd() as srv:
            m = sent(srv, "-t", "-i", input=msg, via=via)
        got.append((m.mail_from, m.rcpt_tos, m.content))
    assert got[0] == got[1]
    assert got[0][2] == msg.replace("\n", "\r\n").encode()


@test
def ignored_sendmail_options_are_accepted():
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-oem", "-odi", "-oQ/var/spool", "-N", "never", "-R", "hdrs",
                 "-V", "envid", "-U", "-bm", "-B", "8BITMIME", "-oi", "b@example.org",
                 input="From: a@example.com\nSubject: s\n\nx\n")
    assert m.rcpt_tos == ["b@example.org"]


@test
def big_body_arrives_whole():
    line = "0123456789" * 7 + "\n"
    body = line * 60000  # about 4.3 MB
    with servers.AioSmtpd() as srv:
        m = sent(srv, "-i", "b@example.org",
                 input="From: a@example.com\nSubject: big\n\n" + body, env=None)
    assert body_of(m) == body.replace("\n", "\r\n").encode()


# ---- refusals ----

@test
def no_recipients_is_a_usage_error():
    with servers.AioSmtpd() as srv:
        refused(srv, 64, "-i", input="From: a@example.com\nSubject: s\n\nx\n",
                says="no recipients")
        refused(srv, 64, "-t", input="From: a@example.com\nSubject: s\n\nx\n",
                says="no recipients")


@test
def a_line_that_is_not_a_header_starts_the_body():
    # As Postfix's sendmail does: `echo hi | sendmail x@y` sends "hi" as the body, and a
    # header block interrupted by a non-header line ends there.
    with servers.AioSmtpd() as srv:
        rc, out, err = sendmail(srv, "b@example.org", input="hello, just a body\nline 2\n")
        assert rc == 0, err
        rc, out, err = sendmail(srv, "b@example.org",
                                input="Subject: s\nthis is not a header\n\nbody\n")
        assert rc == 0, err
        first, second = srv.wait_messages(2)
        for m in (first, second):
            check_wire(m)
        assert first.message.get_content().replace("\r\n", "\n") == "hello, just a body\nline 2\n"
        assert first.message["Subject"] is None
        assert second.message["Subject"] == "s"
        assert second.message.get_content().replace("\r\n", "\n") == "this is not a header\n\nbody\n"
    with servers.AioSmtpd() as srv:
        refused(srv, 65, "b@example.org", input=b"From: a@example.com\nSubject: a\0b\n\nx\n",
                says="NUL")


@test
def header_block_over_one_mib_is_bad_input():
    big = "X-Filler: " + "a" * 70 + "\n"
    with servers.AioSmtpd() as srv:
        refused(srv, 65, "b@example.org", input=big * 16000, says="header")


@test
def invalid_recipients_are_bad_input():
    with servers.AioSmtpd() as srv:
        refused(srv, 65, "-t", input="From: a@example.com\nTo: not an address\n\nx\n",
                says="To:")
        refused(srv, 65, "root", input="Subject: x\n\nbody\n", says="no domain")


@test
def unsupported_modes_are_usage_errors():
    with servers.AioSmtpd() as srv:
        for args, says in ((("-bs",), "-bs"), (("-bp",), "-bp"), (("-q",), "-q"),
                           (("-Z", "b@example.org"), "-Z")):
            refused(srv, 64, *args, input="Subject: x\n\nbody\n", says=says)


@test
def unreachable_server_queues_the_message():
    """Issue 5: when the server cannot be reached, the message is stored in the spool (for
    `pigeon daemon`) and sendmail exits 0; `pigeon queue show` finds it whole."""
    srv = servers.AioSmtpd()  # never started: nothing listens on its port
    state = harness.tmpdir("pigeon-state-")
    rc, out, err = sendmail(srv, "b@example.org",
                            input="From: a@example.com\nSubject: s\n\nx\n",
                            env={"XDG_STATE_HOME": state})
    assert rc == 0, (rc, err)
    assert out == b"" and b"queued as " in err, (out, err)
    qid = err.split(b"queued as ")[1].split()[0].decode()
    rc, out, err = harness.run_cmd([harness.pigeon_path(), "queue", "show", qid, "--json"],
                                   env={"XDG_STATE_HOME": state})
    assert rc == 0, err
    import json
    shown = json.loads(out)
    assert shown["account"] == "main" and shown["mail_from"] == "a@example.com", shown
    assert [r["address"] for r in shown["recipients"]] == ["b@example.org"], shown


@test
def unreachable_server_without_account_is_a_temporary_failure():
    """Settings given on the command line cannot be queued (the daemon reads an account):
    the failure is reported as temporary (75) so the caller can retry."""
    srv = servers.AioSmtpd()  # never started
    state = harness.tmpdir("pigeon-state-")
    rc, out, err = sendmail(srv, "--host", "127.0.0.1", "--port", str(srv.port), "--tls",
                            "none", "b@example.org",
                            input="From: a@example.com\nSubject: s\n\nx\n",
                            env={"XDG_STATE_HOME": state})
    assert rc == 75, (rc, err)
    assert b"not queued" in err, err
    assert not os.path.exists(os.path.join(state, "pigeon", "spool.db"))


if __name__ == "__main__":
    harness.run()
