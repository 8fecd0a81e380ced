"""SMTP smuggling (CVE-2023-51764 family) and DATA transparency (RFC 5321 4.5.2): whatever
the message body holds (\\n.\\n, \\r.\\r, \\r\\n.\\n, NUL, lone dots, an embedded end of
data followed by commands, dots across read boundaries), the bytes on the wire after DATA
contain no bare CR or LF and exactly one end-of-data, at the end; and what an
independent server (aiosmtpd) reads back is the body with its line endings made CRLF.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import servers  # noqa: E402
import smtptool  # noqa: E402
from harness import test  # noqa: E402

HEAD = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: smuggle\r\n\r\n"

# tool_smtp reads the file 4093 bytes at a time: put line ends and dots across that edge.
_FILL = (b"y" * 78 + b"\r\n") * 50
_PAD = 4093 - len(HEAD) - len(_FILL) - 1
EDGE = _FILL + b"z" * _PAD + b"\r" + b"\n.\r\nMAIL FROM:<edge@evil.test>\r\n"

CORPUS = [
    b"a\n.\nb\n",
    b"a\r.\rb",
    b"a\r\n.\nb\r\n",
    b"a\n.\r\nMAIL FROM:<evil@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n",
    b"x\r\n.\r\nRCPT TO:<evil@evil.test>\r\n",
    b"nul\x00\r\n.\x00\r\n\x00",
    b".\r\n",
    b"..\r\n",
    b".",
    b"",
    b"\r\n.\r",
    b"a\r\r\n.\n\r\n",
    b"no final newline",
    b"\n\n.\n\n.\n",
    b"trailing\r\n.\r\n",
    EDGE,
]

BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def normalize(body):
    """What the receiver must read: every CRLF, CR or LF as CRLF, ending with CRLF."""
    text = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text


def wire_after_data(received):
    start = received.index(b"DATA\r\n") + len(b"DATA\r\n")
    rest = received[start:]
    assert rest.endswith(b"QUIT\r\n"), rest[-200:]
    return rest[:-len(b"QUIT\r\n")]


@test
def wire_has_one_end_of_data_and_no_bare_line_ends():
    for i, body in enumerate(CORPUS):
        msg = HEAD + body
        with servers.ScriptedServer(servers.default_session()) as srv:
            r = smtptool.run(srv.port, "--tls", "none", raw=msg)
            srv.wait_done(1)
        srv.check()
        assert r.first["status"] == "sent", (i, r)
        wire = wire_after_data(srv.received)
        assert not BARE.search(wire), (i, body, wire)
        assert wire.endswith(b"\r\n.\r\n"), (i, wire[-20:])
        # The terminator appears once: at the end (a dot line inside is stuffed "..").
        assert wire.count(b"\r\n.\r\n") == 1, (i, body, wire)
        assert servers.unstuff(srv.data[0]) == normalize(msg), (i, body, srv.data[0])


@test
def independent_server_reads_back_the_normalized_body():
    with servers.AioSmtpd() as srv:
        for body in CORPUS:
            r = smtptool.run(srv.port, "--tls", "none", raw=HEAD + body)
            assert r.first["status"] == "sent", r
        got = srv.wait_messages(len(CORPUS))
    for body, m in zip(CORPUS, got):
        assert m.content == normalize(HEAD + body), (body, m.content)
        assert m.rcpt_tos == ["bob@example.test"], m.rcpt_tos
    # No smuggled transaction made it: one message per body, all from alice.
    assert len(got) == len(CORPUS)
    assert {m.mail_from for m in got} == {"alice@example.test"}


@test
def several_messages_on_one_connection_stay_separate():
    body = HEAD + b"one\n.\nMAIL FROM:<evil@evil.test>\n"
    with servers.AioSmtpd() as srv:
        r = smtptool.run(srv.port, "--tls", "none", "--count", "3", raw=body)
        got = srv.wait_messages(3)
    assert [m["status"] for m in r.messages] == ["sent"] * 3, r
    assert all(m.content == normalize(body) for m in got)
    assert "RSET" in r.transcript


if __name__ == "__main__":
    harness.run()
