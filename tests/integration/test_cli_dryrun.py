"""`pigeon send --dry-run` and the command's front end: exit statuses (0, 64, 65, 66,
69) produced for real, one line on stderr for every refusal, CRLF-only output, Bcc kept
out of the message, stdin bodies, --attach overrides, --inline Content-IDs, --charset.
"""

import os

import harness
from harness import test
from mailcheck import (crlf, dry_run, expect_ok, expect_refused, leaves, one_line, run_raw,
                       structure)

FROM = "Alice <alice@example.com>"
TO = "bob@example.org"
BASE = ("--from", FROM, "--to", TO)
SEND_OPTIONS = ("--from", "--to", "--cc", "--bcc", "--reply-to", "--subject", "--header",
                "--text", "--text-file", "--html-file", "--attach", "--inline", "--charset",
                "--dry-run")


def files(**contents):
    """Writes files into a fresh directory; returns {key: path}."""
    d = harness.tmpdir("pigeon-cli-")
    paths = {}
    for key, (name, data) in contents.items():
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        paths[key] = path
    return paths


# ---- 0: success ----

@test
def minimal_message_is_crlf_and_parses():
    raw, msg = expect_ok(*dry_run(*BASE, "--subject", "hello", "--text", "line1\nline2\n"))
    assert [(a.display_name, a.addr_spec) for a in msg["From"].addresses] == \
        [("Alice", "alice@example.com")]
    assert [a.addr_spec for a in msg["To"].addresses] == [TO]
    assert msg["Subject"] == "hello"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content() == "line1\r\nline2\r\n"
    assert b"\n" not in raw.replace(b"\r\n", b"")


@test
def version_and_help():
    rc, out, err = harness.pigeon("--version")
    assert rc == 0 and out.startswith(b"pigeon ") and err == b""
    for args in (("--help",), ("help", "send"), ("send", "--help"), ("help",)):
        rc, out, err = harness.pigeon(*args)
        assert rc == 0 and err == b"", (args, rc, err)
        text = out.decode()
        missing = [o for o in SEND_OPTIONS if o not in text]
        assert not missing, "%s does not list %s" % (" ".join(args), missing)


@test
def comma_inside_quoted_display_name_is_not_a_separator():
    raw, msg = expect_ok(*dry_run("--from", FROM, "--to",
                                  '"Zhang, San" <zs@example.cn>, li@example.cn',
                                  "--to", "wang@example.cn", "--text", "x"))
    got = [(a.display_name, a.addr_spec) for a in msg["To"].addresses]
    assert got == [("Zhang, San", "zs@example.cn"), ("", "li@example.cn"),
                   ("", "wang@example.cn")], got


@test
def bcc_is_not_in_the_message():
    raw, msg = expect_ok(*dry_run(*BASE, "--cc", "carol@example.net",
                                  "--bcc", "Secret Person <hidden@example.net>",
                                  "--bcc", "also-hidden@example.net", "--text", "x"),
                         bcc=("hidden@example.net", "also-hidden@example.net"))
    assert msg["Bcc"] is None
    assert b"Secret Person" not in raw
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["carol@example.net"]


@test
def bcc_only_message_is_accepted():
    raw, msg = expect_ok(*dry_run("--from", FROM, "--bcc", "x@example.net", "--text", "x"),
                         bcc=("x@example.net",))
    assert msg["To"] is None


@test
def text_file_from_stdin():
    body = "第一行\n第二行\r\nthird\rlast line without newline"
    raw, msg = expect_ok(*dry_run(*BASE, "--text-file", "-", input=body.encode()))
    assert msg.get_content() == crlf(body)


@test
def html_file_from_stdin_with_text():
    html = "<p>你好 <b>world</b></p>\n"
    # --no-inline-css --no-embed-images: the HTML exactly as written (no re-serialization).
    raw, msg = expect_ok(*dry_run(*BASE, "--text", "plain", "--html-file", "-",
                                  "--no-inline-css", "--no-embed-images", input=html.encode()))
    assert structure(msg) == ("multipart/alternative", ["text/plain", "text/html"])
    assert msg.get_body(("html",)).get_content() == crlf(html)
    assert msg.get_body(("plain",)).get_content() == "plain"


@test
def attach_overrides_name_and_type():
    f = files(pdf=("data.bin", b"%PDF-1.4 \x00\xff\x80 binary"),
              semi=("a;b.txt", b"semicolon file\n"),
              semi2=("r;name=x.dat", b"tricky name\n"))
    raw, msg = expect_ok(*dry_run(
        *BASE, "--text", "see attached",
        "--attach", f["pdf"] + ";name=显示名.pdf;type=application/pdf",
        "--attach", f["semi"],                                  # exists as given: all path
        "--attach", f["semi"] + ";type=text/x-log;name=日志;v2.log",  # name keeps its ';'
        "--attach", f["semi2"],                                 # ";name=" inside the path
        "--attach", f["semi2"] + ";type=application/x-thing"))
    atts = list(msg.iter_attachments())
    got = [(a.get_filename(), a.get_content_type(), a.get_payload(decode=True)) for a in atts]
    assert got == [
        ("显示名.pdf", "application/pdf", b"%PDF-1.4 \x00\xff\x80 binary"),
        ("a;b.txt", "text/plain", b"semicolon file\n"),
        ("日志;v2.log", "text/x-log", b"semicolon file\n"),
        ("r;name=x.dat", "application/octet-stream", b"tricky name\n"),
        ("r;name=x.dat", "application/x-thing", b"tricky name\n"),
    ], got


@test
def attach_duplicate_override_is_usage_error():
    f = files(a=("a.bin", b"x"))
    err = expect_refused(*dry_run(*BASE, "--attach", f["a"] + ";name=x;name=y"), 64)
    assert "name= given twice" in err, err


@test
def inline_content_id_is_the_base_name():
    f = files(logo=("logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
              chart=("chart-2024.gif", b"GIF89a" + b"\x00" * 40))
    html = '<img src="cid:logo.png"><img src="cid:chart-2024.gif">'
    f2 = files(html=("body.html", html.encode()))
    raw, msg = expect_ok(*dry_run(*BASE, "--text", "alt", "--html-file", f2["html"],
                                  "--inline", f["logo"], "--inline", f["chart"]))
    assert structure(msg) == ("multipart/related", [
        ("multipart/alternative", ["text/plain", "text/html"]), "image/png", "image/gif"])
    parts = leaves(msg)[2:]
    assert [p["Content-ID"] for p in parts] == ["<logo.png>", "<chart-2024.gif>"]
    assert [p.get_content_disposition() for p in parts] == ["inline", "inline"]
    assert parts[0].get_payload(decode=True) == b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@test
def charset_gb18030_and_gbk():
    text = "您好,这是月度报告。\nHello 𠀀 (a GB18030 four-byte character)\n"
    raw, msg = expect_ok(*dry_run(*BASE, "--subject", "报告", "--charset", "gb18030",
                                  "--text", text))
    assert msg.get_content_charset() == "gb18030"
    payload = msg.get_payload(decode=True)
    assert payload.decode("gb18030") == crlf(text)
    assert payload != crlf(text).encode("utf-8")
    assert msg["Subject"] == "报告"
    gbk_text = "您好,这是月度报告。\n"
    raw, msg = expect_ok(*dry_run(*BASE, "--charset", "GBK", "--text", gbk_text,
                                  "--html-file", "-", "--no-inline-css", "--no-embed-images",
                                  input="<p>中文</p>".encode()))
    for part, want in zip(leaves(msg), (gbk_text, "<p>中文</p>")):
        assert part.get_content_charset() == "gbk"
        assert part.get_payload(decode=True).decode("gbk") == crlf(want)


@test
def charset_gbk_unrepresentable_is_refused():
    err = expect_refused(*dry_run(*BASE, "--charset", "gbk", "--text", "emoji 😀"), 65)
    assert "gbk" in err.lower() or "charset" in err.lower() or "transcod" in err.lower(), err


# ---- 64: usage ----

@test
def usage_errors_exit_64():
    cases = [
        (("send", "--dry-run", "--to", TO, "--text", "x"), "--from"),
        (("send", "--dry-run", "--from", FROM, "--text", "x"), "recipient"),
        (("send", "--dry-run", *BASE, "--bogus"), "--bogus"),
        (("send", "--dry-run", *BASE, "-x"), "-x"),
        (("send", "--dry-run", *BASE, "--subject"), "--subject"),
        (("send", "--dry-run", *BASE, "--to"), "--to"),
        (("send", "--dry-run", *BASE, "--from", "x@example.com"), "--from"),
        (("send", "--dry-run", *BASE, "--charset", "latin1"), "--charset"),
        (("send", "--dry-run", *BASE, "stray-operand"), "stray-operand"),
        (("send", "--dry-run", *BASE, "--text", "a", "--text-file", "-"), "--text"),
        (("send", "--dry-run", *BASE, "--text-file", "-", "--html-file", "-"), "standard input"),
        (("send", "--dry-run", *BASE, "--to", ""), "--to"),
        ((), "command"),
        (("frobnicate",), "frobnicate"),
        (("--frobnicate",), "--frobnicate"),
        (("help", "frobnicate"), "frobnicate"),
    ]
    for args, mention in cases:
        err = expect_refused(*harness.pigeon(*args), 64)
        assert mention in err, "%r: %r does not mention %r" % (args, err, mention)


# ---- 65: bad input ----

@test
def bad_input_exits_65():
    f = files(bad=("bad.txt", b"caf\xe9 latin-1\n"), ok=("ok.bin", b"x"))
    cases = [
        (("--from", FROM, "--to", "a@b@c"), 'invalid --to address "a@b@c"'),
        (("--from", "a@b@c", "--to", TO), 'invalid --from address "a@b@c"'),
        ((*BASE, "--cc", "no-at-sign"), "invalid --cc address"),
        ((*BASE, "--bcc", "x@"), "invalid --bcc address"),
        ((*BASE, "--reply-to", "<unclosed@example.com"), "invalid --reply-to address"),
        ((*BASE, "--subject", "a\r\nBcc: evil@example.com"), "invalid --subject"),
        ((*BASE, "--header", "no colon here"), "invalid --header"),
        ((*BASE, "--header", "X Bad Name: v"), "invalid --header"),
        ((*BASE, "--header", "From: other@example.com"), "invalid --header"),
        ((*BASE, "--header", "X-A: 1\nX-B: 2"), "invalid --header"),
        ((*BASE, "--text-file", f["bad"]), "--text-file"),
        ((*BASE, "--html-file", f["bad"]), "--html-file"),
        ((*BASE, "--attach", f["ok"] + ";name=a\nb"), "--attach"),
        ((*BASE, "--attach", f["ok"] + ";type=notatype"), "--attach"),
        # No SMTPUTF8 in a dry run: a non-ASCII local part cannot be written (RFC 6531).
        (("--from", FROM, "--to", "用户@example.cn"), "SMTPUTF8"),
    ]
    for args, mention in cases:
        err = expect_refused(*dry_run(*args), 65)
        assert mention in err, "%r: %r does not mention %r" % (args, err, mention)
        assert "\\n" in err or "\n" not in args[-1], err


@test
def invalid_utf8_in_arguments_exits_65():
    base = [b"send", b"--dry-run", b"--from", FROM.encode(), b"--to", TO.encode()]
    for extra in ([b"--subject", b"caf\xe9"], [b"--text", b"\xff\xfe"],
                  [b"--header", b"X-Note: \xc3\x28"], [b"--to", b"J\xe9r\xf4me <j@example.com>"]):
        err = expect_refused(*run_raw(base + extra), 65)
        assert "\\x" in err, "invalid bytes are not escaped in %r" % err


@test
def stderr_stays_one_line_whatever_the_value():
    for evil in ("a\nb@example.com", "x\r\ny@example.com", "a\u2028b@example.com",
                 "c\u0085d@example.com", "e\x1b[31mred@example.com", "x" * 5000 + "@a.b",
                 "张" * 500 + "@a.b"):
        err = expect_refused(*dry_run("--from", FROM, "--to", evil), 65)
        assert len(err) < 400, "error line of %d chars" % len(err)


# ---- 66: missing input ----

@test
def missing_input_files_exit_66():
    d = harness.tmpdir("pigeon-cli-")
    gone = os.path.join(d, "does-not-exist.txt")
    for opt in ("--text-file", "--html-file", "--attach", "--inline"):
        err = expect_refused(*dry_run(*BASE, opt, gone), 66)
        assert opt in err and "does-not-exist.txt" in err, err
    err = expect_refused(*dry_run(*BASE, "--attach", d), 66)   # a directory
    err = expect_refused(*dry_run(*BASE, "--text-file", d), 66)
    unreadable = os.path.join(d, "secret.txt")
    with open(unreadable, "w") as f:
        f.write("x")
    os.chmod(unreadable, 0)
    if os.geteuid() != 0:   # root reads anything
        expect_refused(*dry_run(*BASE, "--attach", unreadable), 66)
    err = expect_refused(*dry_run(*BASE, "--attach", gone + ";name=x.pdf"), 66)
    assert "does-not-exist.txt" in err and "name=" not in err, err


@test
def text_attachments_declare_utf8_when_they_need_it():
    d = harness.tmpdir("txt")
    chinese, ascii_ = os.path.join(d, "报告.csv"), os.path.join(d, "plain.txt")
    with open(chinese, "w", encoding="utf-8") as f:
        f.write("月份,发送量\n十月,1200\n")
    with open(ascii_, "w") as f:
        f.write("just ascii\n")
    raw, msg = expect_ok(*dry_run(*BASE, "--text", "x", "--attach", chinese, "--attach", ascii_))
    parts = {p.get_filename(): p for p in leaves(msg) if p.get_filename()}
    csv, txt = parts["报告.csv"], parts["plain.txt"]
    assert csv.get_content_type() == "text/csv" and csv.get_param("charset") == "utf-8"
    assert csv.get_content().replace("\r\n", "\n") == "月份,发送量\n十月,1200\n"
    assert txt.get_param("charset") is None  # US-ASCII, the default, says nothing


# ---- 78: sending without a server ----

@test
def send_without_a_server_is_a_configuration_error():
    env = {"PIGEON_CONFIG": None, "HOME": harness.tmpdir("home"),
           "XDG_CONFIG_HOME": harness.tmpdir("xdg")}
    rc, out, err = harness.pigeon("send", *BASE, "--text", "x", env=env)
    assert rc == 78 and out == b"", (rc, out, err)
    assert one_line(err).startswith("pigeon: no server given"), err
    # Composition errors come first: they are what the user must fix.
    expect_refused(*harness.pigeon("send", "--from", FROM, "--to", "a@b@c", env=env), 65)


if __name__ == "__main__":
    harness.run()
