"""Checks shared by the `pigeon send --dry-run` tests (test_cli_dryrun, test_roundtrip,
test_injection): running the command, and the structural invariants every message
pigeon writes must hold, checked on the raw bytes with a walker independent of the
library (RFC 5322 2.1.1, 2.2; RFC 2045 6.7, 6.8; RFC 2046 5.1.1) and on what Python's
email package (policy.default) reads back.
"""

import email
import email.header
import email.policy
import email.utils
import re

import harness

# RFC 5322 3.6: fields that may occur at most once in a message.
SINGLE_FIELDS = ("from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date",
                 "message-id", "in-reply-to", "references", "mime-version",
                 "content-type", "content-transfer-encoding")

B64_LINE = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
MSG_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")


def dry_run(*args, input=None, env=None):
    """Runs `pigeon send --dry-run ARGS`; returns (rc, stdout, stderr)."""
    return harness.pigeon("send", "--dry-run", *args, input=input, env=env)


def run_raw(argv, input=None):
    """Runs pigeon with argv given as bytes or str (for invalid UTF-8 in arguments)."""
    return harness.run_cmd([harness.pigeon_path()] + list(argv), input=input)


def one_line(err):
    """Asserts stderr is exactly one line "pigeon: ..."; returns it as str."""
    assert err.startswith(b"pigeon: "), "stderr does not start with 'pigeon: ': %r" % err
    assert err.endswith(b"\n") and err.count(b"\n") == 1 and b"\r" not in err, \
        "stderr is not exactly one line: %r" % err
    text = err.decode("utf-8")   # must be valid UTF-8 whatever the input was
    assert len(text.splitlines()) == 1, "stderr holds a line separator: %r" % text
    return text.rstrip("\n")


def expect_refused(rc, out, err, status):
    """Asserts a refusal: the exit status, nothing on stdout, one line on stderr."""
    assert rc == status, "exit %d, expected %d; stderr %r" % (rc, status, err)
    assert out == b"", "refused but wrote %d bytes to stdout" % len(out)
    return one_line(err)


def expect_ok(rc, out, err, bcc=()):
    """Asserts success and a well-formed message; returns (raw, EmailMessage)."""
    assert rc == 0, "exit %d: %r" % (rc, err)
    assert err == b"", "stderr on success: %r" % err
    return out, check_wire(out, bcc=bcc)


def split_entity(raw):
    """(header bytes, each line ending CRLF; body bytes) of one MIME entity."""
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return raw if raw.endswith(b"\r\n") else raw + b"\r\n", b""
    return raw[:end + 2], raw[end + 4:]


def split_multipart(body, boundary):
    """The raw parts of a multipart body (RFC 2046 5.1.1): the CRLF before a delimiter
    belongs to the delimiter; preamble and epilogue are dropped."""
    delim = b"--" + boundary
    lines = body.split(b"\r\n")
    parts, cur, closed = [], None, False
    for line in lines:
        bare = line.rstrip(b" \t")
        if bare == delim or bare == delim + b"--":
            if cur is not None:
                parts.append(b"\r\n".join(cur))
            cur = None if bare.endswith(b"--") and bare != delim else []
            if cur is None:
                closed = True
                break
            continue
        if cur is not None:
            cur.append(line)
    assert closed, "multipart body without its close-delimiter --%r--" % boundary
    return parts


def walk_raw(raw, depth=0):
    """Yields (header bytes, body bytes, parsed header) for every entity, depth first."""
    assert depth < 10, "MIME nesting deeper than 10"
    hdr, body = split_entity(raw)
    parsed = email.message_from_bytes(hdr + b"\r\n", policy=email.policy.default)
    yield hdr, body, parsed
    if parsed.get_content_maintype() == "multipart":
        boundary = parsed.get_boundary()
        assert boundary, "multipart without boundary"
        for part in split_multipart(body, boundary.encode("ascii")):
            yield from walk_raw(part, depth + 1)


def header_names(hdr):
    """Field names of a raw header block, in order, lower-cased."""
    names = []
    for line in hdr.split(b"\r\n"):
        if line and line[:1] not in (b" ", b"\t"):
            assert b":" in line, "header line without colon: %r" % line
            names.append(line.split(b":", 1)[0].decode("ascii").lower())
    return names


def check_entity(hdr, body, parsed, top):
    for line in hdr.split(b"\r\n"):
        assert len(line) <= 998, "header line of %d octets" % len(line)
        assert all(b < 0x80 for b in line), "unencoded non-ASCII in header: %r" % line[:200]
        assert b"\x00" not in line, "NUL in header"
    names = header_names(hdr)
    for name in SINGLE_FIELDS:
        assert names.count(name) <= 1, "%s appears %d times" % (name, names.count(name))
    if not top:
        stray = [n for n in names if not n.startswith("content-")]
        assert not stray, "non-Content header in a body part: %r" % stray
    if parsed.get_content_maintype() == "multipart":
        return
    cte = str(parsed.get("Content-Transfer-Encoding", "7bit")).lower()
    lines = body.split(b"\r\n")
    if cte in ("base64", "quoted-printable"):
        for line in lines:
            assert len(line) <= 76, "%s line of %d chars" % (cte, len(line))
            assert all(32 <= b < 127 or b == 9 for b in line), "%s line not ASCII" % cte
    if cte == "base64":
        for line in lines:
            assert B64_LINE.match(line), "bad base64 line %r" % line[:80]
    if cte == "7bit":
        assert all(b < 0x80 for b in body), "8-bit octet in a 7bit part"
        assert b"\x00" not in body, "NUL in a 7bit part"


def check_wire(raw, bcc=()):
    """Asserts the invariants on raw message bytes; returns the parsed EmailMessage."""
    assert raw, "empty message"
    assert b"\r" not in raw.replace(b"\r\n", b""), "bare CR in output"
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF in output"
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998, "line of %d octets (RFC 5322 2.1.1)" % len(line)
    entities = list(walk_raw(raw))
    for i, (hdr, body, parsed) in enumerate(entities):
        check_entity(hdr, body, parsed, top=(i == 0))
    top_names = header_names(entities[0][0])
    assert "bcc" not in top_names, "Bcc header written"
    for addr in bcc:
        assert addr.encode().lower() not in raw.lower(), "Bcc address %r in output" % addr
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        assert not part.defects, "parser defects: %r" % part.defects
    assert top_names.count("message-id") == 1, "no Message-ID"
    assert MSG_ID.match(str(msg["Message-ID"]).strip()), "bad Message-ID %r" % msg["Message-ID"]
    assert top_names.count("date") == 1, "no Date"
    assert msg["Date"].datetime is not None
    assert email.utils.parsedate_to_datetime(str(msg["Date"])).tzinfo is not None
    assert str(msg["MIME-Version"]) == "1.0"
    assert "from" in top_names
    return msg


def leaves(msg):
    """The non-multipart parts, in order."""
    return [p for p in msg.walk() if not p.is_multipart()]


def structure(part):
    """The content-type tree: 'text/plain' or ('multipart/mixed', [children])."""
    if part.is_multipart():
        return (part.get_content_type(), [structure(p) for p in part.iter_parts()])
    return part.get_content_type()


def crlf(text):
    """Normalizes LF, CR and CRLF line endings to CRLF (RFC 2045 canonical text)."""
    return re.sub(r"\r\n|\r|\n", "\r\n", text)


def _python_keeps_space_between_encoded_words():
    """CPython gh-128110 (fixed upstream by python/cpython#130749): policy.default keeps
    the white space between two adjacent encoded-words of a display name, which RFC 2047
    6.2 says to drop. True when the installed Python has that bug."""
    probe = b"To: =?UTF-8?B?5byg?= =?UTF-8?B?5byg?= <z@example.cn>\r\n\r\n"
    return harness.parse(probe)["To"].addresses[0].display_name != "\u5f20\u5f20"


EW_SPACE_BUG = _python_keeps_space_between_encoded_words()
ADJACENT_EW = re.compile(r"\?=[ \t]+=\?")


def _legacy_display_names(raw, field):
    """Display names of a field decoded by the legacy API (email.utils.getaddresses on the
    raw value, then email.header.decode_header, which follows RFC 2047 6.2)."""
    value = email.message_from_bytes(raw, policy=email.policy.compat32).get(field, "")
    value = value.replace("\r\n", "").replace("\n", "")
    return [str(email.header.make_header(email.header.decode_header(n))) if n else ""
            for n, _ in email.utils.getaddresses([value])]


def display_names(raw, msg, field, want):
    """The display names of field's mailboxes as Python reads them. Where they differ from
    want only because of gh-128110 (the raw field has adjacent encoded-words and this
    Python has the bug), the RFC 2047-exact legacy decoding is returned instead."""
    header = msg[field]
    got = [a.display_name for a in header.addresses] if header is not None else []
    raw_value = email.message_from_bytes(raw, policy=email.policy.compat32).get(field, "")
    if got != want and EW_SPACE_BUG and ADJACENT_EW.search(raw_value.replace("\r\n", "")):
        legacy = _legacy_display_names(raw, field)
        if len(legacy) == len(got):
            return legacy
    return got
