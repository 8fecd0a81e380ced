"""The IMAP client against scripted servers: the paths Dovecot never takes, checked on
the wire bytes (tool_mailbox.c drives the library).

- no SASL-IR, no LITERAL+: AUTHENTICATE waits for "+", APPEND sends a synchronizing
  literal and waits for the continuation; [APPENDUID] read from the tagged OK;
- no MOVE: UID COPY, UID STORE +FLAGS.SILENT (\\Deleted), UID EXPUNGE (UIDPLUS);
- a server that answers STARTTLS and then pushes plaintext (command injection) is refused;
- a LIST with a literal name and a FETCH whose body is a quoted string;
- a malformed response is a protocol error, not a crash.
"""
import base64
import os

import harness
import pki
import servers
from harness import test

USER, PASSWORD = "test", "pa ss"
PLAIN = base64.b64encode(b"\0test\0pa ss").decode()


def tool(port, *args, mode="implicit"):
    argv = [harness.build_tool("mailbox"), "imap", "127.0.0.1", str(port), mode, pki.get().ca,
            USER] + list(args)
    rc, out, err = harness.run_cmd(argv, env={"MAILBOX_PASSWORD": PASSWORD,
                                             "MAILBOX_VERBOSE": "1"}, timeout=30)
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def write(data):
    path = os.path.join(harness.tmpdir(), "m.eml")
    with open(path, "wb") as f:
        f.write(data)
    return path


@test
def synchronizing_literal_and_authenticate_without_sasl_ir():
    script = [
        ("send", b"* OK IMAP4rev1 ready\r\n"),
        ("expect", rb"^A1 CAPABILITY\r\n$"),
        ("send", b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nA1 OK done\r\n"),
        ("expect", rb"^A2 AUTHENTICATE PLAIN\r\n$"),
        ("send", b"+ \r\n"),
        ("expect", ("^" + PLAIN + "\r\n$").encode()),
        ("send", b"A2 OK logged in\r\n"),
        ("expect", rb"^A3 CAPABILITY\r\n$"),
        ("send", b"* CAPABILITY IMAP4rev1 UIDPLUS\r\nA3 OK\r\n"),
        ("expect", rb'^A4 APPEND "&XfJT0ZAB-" \(\\Seen\) \{11\}\r\n$'),
        ("send", b"+ go ahead\r\n"),
        ("expect", rb"^hello you\r\n$"),
        ("expect", rb"^\r\n$"),
        ("send", b"A4 OK [APPENDUID 7 42] APPEND done\r\n"),
        ("expect", rb"^A5 LOGOUT\r\n$"),
        ("send", b"* BYE bye\r\nA5 OK\r\n"),
    ]
    with servers.TlsScriptedServer(script) as srv:
        rc, out, err = tool(srv.port, "append", "已发送", "\\Seen", write(b"hello you\r\n"))
        srv.wait_done(1)
    srv.check()
    assert rc == 0 and out.strip() == "42", (rc, out, err)
    assert PLAIN not in err and "C: [redacted]" in err, err


@test
def move_without_move_copies_flags_and_expunges_one_uid():
    script = [
        ("send", b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n"),
        ("expect", ("^A1 AUTHENTICATE PLAIN " + PLAIN + "\r\n$").encode()),
        ("send", b"A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] ok\r\n"),
        ("expect", rb'^A2 SELECT "INBOX"\r\n$'),
        ("send", b"* 3 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\nA2 OK [READ-WRITE] ok\r\n"),
        ("expect", rb'^A3 UID COPY 5 "Archive"\r\n$'),
        ("send", b"A3 OK [COPYUID 9 5 1] ok\r\n"),
        ("expect", rb"^A4 UID STORE 5 \+FLAGS\.SILENT \(\\Deleted\)\r\n$"),
        ("send", b"A4 OK\r\n"),
        ("expect", rb"^A5 UID EXPUNGE 5\r\n$"),
        ("send", b"* 2 EXPUNGE\r\nA5 OK\r\n"),
        ("expect", rb"^A6 LOGOUT"),
        ("send", b"* BYE\r\nA6 OK\r\n"),
    ]
    with servers.TlsScriptedServer(script) as srv:
        rc, out, err = tool(srv.port, "move", "INBOX", "5", "Archive")
        srv.wait_done(1)
    srv.check()
    assert rc == 0, err
    assert b"EXPUNGE\r\n" not in srv.received.replace(b"UID EXPUNGE", b""), srv.received


@test
def plaintext_pushed_after_starttls_is_refused():
    script = [
        ("send", b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi\r\n"),
        ("expect", rb"^A1 STARTTLS\r\n$"),
        ("send", b"A1 OK begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"),
        ("drain", 2),
    ]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = tool(srv.port, "list", mode="starttls")
        srv.wait_done(1)
    assert rc == 1 and "PIGEON_ERR_PROTOCOL" in err and "injection" in err, err
    assert b"AUTHENTICATE" not in srv.received and b"LOGIN" not in srv.received


@test
def starttls_not_offered_is_a_tls_error_and_no_login():
    script = [
        ("send", b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"),
        ("drain", 2),
    ]
    with servers.ScriptedServer(script) as srv:
        rc, out, err = tool(srv.port, "list", mode="starttls")
        srv.wait_done(1)
    assert rc == 1 and "PIGEON_ERR_TLS" in err and "STARTTLS" in err, err
    assert b"AUTHENTICATE" not in srv.received and b"LOGIN" not in srv.received


def logged_in(caps=b"IMAP4rev1 SPECIAL-USE"):
    return [
        ("send", b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n"),
        ("expect", rb"^A1 AUTHENTICATE PLAIN "),
        ("send", b"A1 OK [CAPABILITY " + caps + b"] ok\r\n"),
    ]


@test
def list_with_a_literal_name_and_special_use():
    script = logged_in() + [
        ("expect", rb'^A2 LIST "" "\*" RETURN \(SPECIAL-USE\)\r\n$'),
        ("send", b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
                 b'* LIST (\\Sent \\HasNoChildren) "/" {13}\r\nSent Messages\r\n'
                 b'* LIST (\\Noselect) NIL "&ZeVnLIqe-"\r\n'
                 b"A2 OK done\r\n"),
        ("expect", rb"^A3 LOGOUT"),
        ("send", b"* BYE\r\nA3 OK\r\n"),
    ]
    with servers.TlsScriptedServer(script) as srv:
        rc, out, err = tool(srv.port, "special", "\\Sent")
        srv.wait_done(1)
    srv.check()
    assert rc == 0 and out.strip() == "Sent Messages", (out, err)
    with servers.TlsScriptedServer(script) as srv:
        rc, out, err = tool(srv.port, "list")
    assert "日本語\t\\Noselect\t-" in out, out


@test
def fetch_of_a_quoted_body_and_of_a_literal_body():
    for body, wire in ((b'a "q" \\', b'"a \\"q\\" \\\\"'), (b"x\r\ny\r\n", b"{6}\r\nx\r\ny\r\n")):
        script = logged_in() + [
            ("expect", rb'^A2 EXAMINE "INBOX"'),
            ("send", b"* 1 EXISTS\r\nA2 OK [READ-ONLY] ok\r\n"),
            ("expect", rb"^A3 UID FETCH 9 \(UID BODY\.PEEK\[\]\)\r\n$"),
            ("send", b"* 1 FETCH (FLAGS (\\Seen) UID 9 BODY[] " + wire + b")\r\n"
                     b"* 1 FETCH (FLAGS (\\Seen \\Flagged))\r\nA3 OK done\r\n"),
            ("expect", rb"^A4 LOGOUT"),
            ("send", b"* BYE\r\nA4 OK\r\n"),
        ]
        dest = os.path.join(harness.tmpdir(), "f.eml")
        with servers.TlsScriptedServer(script) as srv:
            rc, out, err = tool(srv.port, "fetch", "INBOX", "9", dest)
            srv.wait_done(1)
        srv.check()
        assert rc == 0, err
        with open(dest, "rb") as f:
            assert f.read() == body


@test
def malformed_responses_are_protocol_errors():
    for bad in (b"A2 OK done\n", b"* LIST (\\Sent \"/\" x\r\nA2 OK\r\n",
                b"* LIST () \"/\" \"a\0b\"\r\nA2 OK\r\n", b"A9 OK wrong tag\r\n"):
        script = logged_in() + [
            ("expect", rb"^A2 LIST"),
            ("send", bad),
            ("drain", 1),
        ]
        with servers.TlsScriptedServer(script) as srv:
            rc, out, err = tool(srv.port, "list")
            srv.wait_done(1)
        assert rc == 1 and "PIGEON_ERR_PROTOCOL" in err, (bad, err)


if __name__ == "__main__":
    harness.run()
