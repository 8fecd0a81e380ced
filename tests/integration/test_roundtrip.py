"""Round trips: messages written by `pigeon send --dry-run`, read back by Python's email
package (email.message_from_bytes(raw, policy=email.policy.default)), compared field by
field and byte by byte with what was put in.

What "equal" means here:
- addresses: the (display name, local part, domain) triples Python's .addresses gives,
  in input order, equal the intended ones exactly (domains in A-label form: the message
  is written without SMTPUTF8, so IDNs are xn-- on the wire). Where this Python has
  CPython gh-128110 (a space kept between adjacent encoded-words of a display name,
  against RFC 2047 6.2), display names are read with the legacy decoder instead (see
  mailcheck.display_names); addresses are always Python's policy.default reading;
- Subject and custom header values: the str Python decodes equals the input exactly
  (including a literal "=?...?=" the user typed, which must not be decoded);
- text and HTML bodies: the decoded octets (get_payload(decode=True)) equal the input
  with its line endings (LF, CR or CRLF) normalized to CRLF -- RFC 2045 2.10 canonical
  text form -- in the part's charset; a missing final newline stays missing;
  get_content() equals the same normalized str;
- attachments and inline parts: the decoded octets equal the file byte for byte
  (no line-ending conversion, whatever the type); filename, content type, disposition
  and Content-ID equal the intended ones;
- the MIME tree (content types, nesting) is the one message.h promises.
Every message also passes mailcheck.check_wire (only CRLF, lines <= 998, encoded lines
<= 76, headers ASCII only, one Message-ID and Date, no Bcc, no parser defect).
"""

import os
import random

import harness
from harness import test
from mailcheck import crlf, display_names, dry_run, expect_ok, leaves, structure


class Raw:
    """An address argument typed as is, with the mailboxes it must yield."""

    def __init__(self, arg, *expect):
        self.arg = arg
        self.expect = list(expect)


def mbox(name, addr):
    """A mailbox given as (display name, addr-spec); the argument quotes the name."""
    local, domain = addr.rsplit("@", 1)
    if name:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        r = Raw('"%s" <%s>' % (quoted, addr), (name, local, domain))
    else:
        r = Raw(addr, ("", local, domain))
    return r


def idna(domain):
    return domain.encode("idna").decode("ascii")


def rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)


ALL_BYTES = bytes(range(256))
FROM = mbox("Alice", "alice@example.com")
TO = [mbox("", "bob@example.org")]


def case(name, frm=FROM, to=None, cc=(), bcc=(), reply_to=(), subject="round trip",
         headers=(), text=None, text_via="file", html=None, attach=(), inline=(),
         charset=None):
    """One message of the table. attach: (disk name, bytes, name=, type=, expected name,
    expected type); inline: (disk name, bytes, type=, expected type)."""
    return dict(name=name, frm=frm, to=list(TO if to is None else to), cc=list(cc),
                bcc=list(bcc), reply_to=list(reply_to), subject=subject,
                headers=list(headers), text=text, text_via=text_via, html=html,
                attach=list(attach), inline=list(inline), charset=charset)


def att(disk, data, expect_type, name=None, ctype=None, expect_name=None):
    return (disk, data, name, ctype, expect_name or name or disk, expect_type)


LONG_CN = "这是一个非常长的中文主题用于测试编码字的折行是否正确处理多字节字符的边界" * 8
CASES = [
    case("ascii_text", text="Hello Bob,\nsee you.\n"),
    case("chinese_text", subject="月度报告通知", text="您好,这是月度报告。\n谢谢!\n"),
    case("japanese_text", subject="件名:テスト ｶﾀｶﾅ", text="こんにちは、世界。\nﾊﾝｶｸｶﾀｶﾅ\n",
         frm=mbox("山田 太郎", "taro@example.jp")),
    case("korean_text", subject="안녕하세요", text="테스트 메시지입니다.\n"),
    case("emoji", subject="🎉🚀 launch 👨‍👩‍👧 ✓", text="Party 🎉\nFamily 👨‍👩‍👧\n",
         to=[mbox("Rocket 🚀 Team", "rocket@example.org")]),
    case("arabic_rtl", subject="مرحبا بالعالم", text="\u200fمرحبا\nسلام عليكم\n",
         frm=mbox("محمد علي", "m@example.com")),
    case("hebrew_rtl_override", subject="שלום \u202eevil\u202c עולם",
         text="שלום עולם\n", to=[mbox("דוד כהן", "david@example.co.il")]),
    case("empty_text_body", text=""),
    case("empty_text_via_arg", text="", text_via="arg"),
    case("no_body_at_all", text=None),
    case("only_newlines", text="\n\n\n"),
    case("lone_dots_no_final_newline", text="first\n.\n..\n.hidden\nlast ."),
    case("dot_at_end", text="line\n."),
    case("crlf_cr_lf_mixed", text="a\r\nb\rc\nd\r\n\r\ne"),
    case("long_ascii_line", text="x" * 10000 + "\nshort\n"),
    case("long_ascii_words", text=" ".join(["word"] * 3000)),
    case("long_chinese_line", text="汉字" * 5000 + "\n"),
    case("trailing_whitespace", text="tail spaces   \ntabs\t\t\nend \n"),
    case("from_and_dashes_lines", text="From here\n--\n-- \n--=_pigeon_x\n--boundary--\n"),
    case("control_chars_and_nul", text="nul\x00inside\nff\x0cbell\x07esc\x1b[0m\n"),
    case("qp_lookalikes", text="a=3Db =?UTF-8?B?5L2g?= =\n=0D=0A\n", text_via="arg"),
    case("text_and_html", text="plain version\n",
         html="<html><body><p>你好 <b>world</b></p></body></html>\n"),
    case("html_only", html="<p>only html, no text</p>"),
    case("html_long_line", text="t", html="<div>" + "<span>段落</span>" * 2000 + "</div>"),
    case("very_long_subject_ascii", subject=" ".join("subject%d" % i for i in range(200)),
         text="x"),
    case("very_long_subject_unbroken", subject="S" * 2000, text="x"),
    case("very_long_subject_chinese", subject=LONG_CN, text="x"),
    case("subject_spaces_tabs", subject="a  b   c\td", text="x"),
    case("subject_encoded_word_literal", subject="literally =?UTF-8?B?5L2g?= and =?x?q?y?=",
         text="x"),
    case("empty_subject", subject="", text="x"),
    case("no_subject", subject=None, text="x"),
    case("display_names_with_specials",
         to=[mbox('Doe, John "JD" \\ Jr.', "jd@example.com"),
             mbox("a@b.c", "real@example.com"),
             mbox("O'Brien (work)", "ob@example.ie"),
             mbox("semi;colon <angle>", "sc@example.com")],
         text="x"),
    case("very_long_display_names",
         to=[mbox("张" * 120, "zhang@example.cn"), mbox(("Very Long Name " * 30).strip(), "v@x.org")],
         cc=[mbox("🦊" * 40, "fox@example.com")], text="x"),
    # address.c documents that display names have runs of spaces collapsed and their ends
    # trimmed (quoted or not); the expectation says so explicitly.
    case("display_name_spaces_normalized",
         to=[Raw('"  spaced    out  " <s@example.com>', ("spaced out", "s", "example.com")),
             Raw("  Plain   Words   <p@example.com>", ("Plain Words", "p", "example.com"))],
         text="x"),
    case("raw_address_forms",
         to=[Raw('"Zhang, San" <zs@example.cn>, li@example.cn',
                 ("Zhang, San", "zs", "example.cn"), ("", "li", "example.cn")),
             Raw("张三 <zhangsan@qq.com>", ("张三", "zhangsan", "qq.com")),
             Raw("Team: a@x.cn, \"B, b\" <b@y.cn>;", ("", "a", "x.cn"), ("B, b", "b", "y.cn"))],
         text="x"),
    case("quoted_local_part",
         to=[Raw('"john doe"@example.com', ("", "john doe", "example.com")),
             Raw('"x@y"@example.com', ("", "x@y", "example.com"))], text="x"),
    case("idn_domains",
         frm=Raw("张三 <zs@例子.中国>", ("张三", "zs", idna("例子.中国"))),
         to=[Raw("info@bücher.example", ("", "info", idna("bücher.example")))], text="x"),
    case("cc_reply_to_bcc",
         cc=[mbox("卡罗尔", "carol@example.net"), mbox("", "dave@example.net")],
         reply_to=[mbox("Support 支持", "support@example.com"), mbox("", "ops@example.com")],
         bcc=[mbox("Hidden", "hidden1@example.net"), mbox("", "hidden2@example.net")],
         text="x"),
    case("two_hundred_recipients",
         to=[mbox("用户 %d" % i, "user%d@example.com" % i) for i in range(100)],
         cc=[mbox("", "cc%d@example.org" % i) for i in range(100)], text="many"),
    case("custom_headers",
         headers=[("X-Note", "备注: 测试 ✓"), ("X-Priority", "1"),
                  ("X-Long", " ".join(["word"] * 300)), ("X-Tag", "one"), ("X-Tag", "two"),
                  ("X-Literal", "=?UTF-8?Q?not_encoded?="), ("X-Emoji", "🙂 ok"),
                  ("X-Quotes", 'say "hi" \\ back')],
         text="x"),
    case("chinese_attachment_name",
         attach=[att("report.pdf", b"%PDF-1.7\n" + rand_bytes(3000, 1), "application/pdf",
                     name="季度报告 2024年第三季度.pdf")],
         text="见附件\n"),
    case("attachment_disk_names_unicode",
         attach=[att("会议纪要.docx", rand_bytes(500, 2),
                     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
                 att("😀 smile.png", rand_bytes(200, 3), "image/png")],
         text="x"),
    case("attachment_names_special",
         attach=[att("q.txt", b"q\n", "text/plain", name='a "quoted" \\ name.txt'),
                 att("p.bin", b"p", "application/octet-stream", name="100% * 'x'.bin"),
                 att("l.dat", b"l", "application/octet-stream", name="长" * 100 + ".dat"),
                 att("s.dat", b"s", "application/octet-stream", name="spaces  in   name.dat")],
         text="x"),
    case("binary_attachments",
         attach=[att("random.bin", rand_bytes(100000, 4), "application/octet-stream"),
                 att("allbytes.bin", ALL_BYTES * 8, "application/octet-stream"),
                 att("empty.bin", b"", "application/octet-stream"),
                 att("zeros.dat", b"\x00" * 5000, "application/octet-stream")],
         text="x"),
    case("big_streamed_attachment",
         attach=[att("big.bin", rand_bytes(1536 * 1024 + 7, 5), "application/octet-stream")],
         text="x"),
    case("text_like_attachments",
         attach=[att("lf.txt", b"unix\nlines\n", "text/plain"),
                 att("crlf.txt", b"dos\r\nlines\r\n", "text/plain"),
                 att("cr.txt", b"mac\rlines\r", "text/plain"),
                 att("mixed.csv", b"\xef\xbb\xbfa,b\n1,2\r\n3,4", "text/csv"),
                 att("nofinal.txt", b"no final newline", "text/plain"),
                 att("latin1.txt", b"caf\xe9\n", "text/plain"),
                 att("long.log", b"L" * 5000 + b"\n", "text/plain"),
                 att("dots.txt", b".\n..\n.\r\n", "text/plain"),
                 att("page.html", "<p>ünï</p>\n".encode(), "text/html")],
         text="x"),
    case("attachment_type_override",
         attach=[att("data.bin", b"{\"a\": 1}", "application/json", name="data.json",
                     ctype="application/json"),
                 att("x.pdf", b"not really", "application/x-custom", ctype="application/x-custom")],
         text="x"),
    case("attachments_without_body",
         attach=[att("only.pdf", rand_bytes(1000, 6), "application/pdf")]),
    case("nested_alternative_related_mixed",
         text="plain 正文\n", html='<p>图 <img src="cid:logo.png"> <img src="cid:chart.gif"></p>',
         inline=[("logo.png", rand_bytes(4000, 7), None, "image/png"),
                 ("chart.gif", b"GIF89a" + ALL_BYTES, None, "image/gif")],
         attach=[att("a.pdf", rand_bytes(2000, 8), "application/pdf", name="附件.pdf"),
                 att("b.txt", b"text attachment\n", "text/plain")]),
    case("related_html_only", html='<img src="cid:pic.jpg">',
         inline=[("pic.jpg", rand_bytes(1000, 9), None, "image/jpeg")]),
    case("inline_type_override", text="t", html='<img src="cid:img.dat">',
         inline=[("img.dat", rand_bytes(300, 10), "image/webp", "image/webp")]),
    case("gb18030_text_html", charset="gb18030", subject="国标编码",
         text="您好,这是国标编码。\n𠀀 四字节\n", html="<p>中文 𠀀</p>\n",
         attach=[att("报告.txt", "附件不转码\n".encode(), "text/plain")]),
    case("gbk_text", charset="gbk", text="简体中文 GBK 编码\n"),
    case("boundary_lookalikes_everywhere",
         subject="--=_pigeon_ not a boundary",
         text="--=_pigeon_AAAAAAAAAAAAAAAAAAAAAAAA\n--=_pigeon_AAAAAAAAAAAAAAAAAAAAAAAA--\n",
         html="<pre>\n--=_pigeon_\n</pre>",
         attach=[att("b.txt", b"--=_pigeon_B\r\n--=_pigeon_B--\r\n", "text/plain")]),
]


def write_inputs(c, d):
    """Writes the case's files; returns the argument list."""
    args = ["--from", c["frm"].arg]
    for opt, key in (("--to", "to"), ("--cc", "cc"), ("--bcc", "bcc"),
                     ("--reply-to", "reply_to")):
        for r in c[key]:
            args += [opt, r.arg]
    if c["subject"] is not None:
        args += ["--subject", c["subject"]]
    for name, value in c["headers"]:
        args += ["--header", "%s: %s" % (name, value)]
    if c["text"] is not None:
        if c["text_via"] == "arg":
            args += ["--text", c["text"]]
        else:
            path = os.path.join(d, "body.txt")
            with open(path, "wb") as f:
                f.write(c["text"].encode())
            args += ["--text-file", path]
    if c["html"] is not None:
        path = os.path.join(d, "body.html")
        with open(path, "wb") as f:
            f.write(c["html"].encode())
        # The MIME round trip of HTML as written (test_html_mail covers the preparation).
        args += ["--html-file", path, "--no-inline-css", "--no-embed-images", "--no-text"]
    for i, (disk, data, name, ctype, _, _) in enumerate(c["attach"]):
        sub = os.path.join(d, "att%d" % i)
        os.mkdir(sub)
        path = os.path.join(sub, disk)
        with open(path, "wb") as f:
            f.write(data)
        spec = path + (";name=" + name if name else "") + (";type=" + ctype if ctype else "")
        args += ["--attach", spec]
    for disk, data, ctype, _ in c["inline"]:
        path = os.path.join(d, disk)
        with open(path, "wb") as f:
            f.write(data)
        args += ["--inline", path + (";type=" + ctype if ctype else "")]
    if c["charset"]:
        args += ["--charset", c["charset"]]
    return args


def expected_tree(c):
    has_text = c["text"] is not None or c["html"] is None
    if has_text and c["html"] is not None:
        body = ("multipart/alternative", ["text/plain", "text/html"])
    else:
        body = "text/html" if c["html"] is not None else "text/plain"
    if c["inline"]:
        body = ("multipart/related", [body] + [i[3] for i in c["inline"]])
    if c["attach"]:
        body = ("multipart/mixed", [body] + [a[5] for a in c["attach"]])
    return body


def triples(header):
    if header is None:
        return []
    return [(a.display_name, a.username, a.domain) for a in header.addresses]


def check_addresses(c, msg, raw):
    fields = [("From", [c["frm"]])] + [(f, c[k]) for f, k in (
        ("To", "to"), ("Cc", "cc"), ("Reply-To", "reply_to"))]
    for field, items in fields:
        want = [m for r in items for m in r.expect]
        got = triples(msg[field])
        names = display_names(raw, msg, field, [w[0] for w in want])
        got = [(n,) + g[1:] for n, g in zip(names, got)]
        assert got == want, "%s: got %r, want %r" % (field, got[:5], want[:5])


def check_headers(c, msg):
    if c["subject"] is None:
        assert msg["Subject"] is None
    else:
        assert msg["Subject"] == c["subject"], "Subject %r != %r" % (msg["Subject"],
                                                                      c["subject"])
    names = {n for n, _ in c["headers"]}
    for name in names:
        want = [v for n, v in c["headers"] if n == name]
        got = [str(v) for v in msg.get_all(name, [])]
        assert got == want, "%s: got %r, want %r" % (name, got, want)


def check_text(part, want, charset, ctype):
    assert part.get_content_type() == ctype
    assert part.get_content_disposition() in (None, "inline"), part.get_content_disposition()
    assert part.get_content_charset() == (charset or "utf-8"), part.get_content_charset()
    want_str = crlf(want)
    got = part.get_payload(decode=True)
    assert got == want_str.encode(charset or "utf-8"), \
        "%s body differs: got %r... want %r..." % (ctype, got[:80], want_str[:80])
    assert part.get_content() == want_str


def check_bodies(c, msg):
    parts = leaves(msg)
    i = 0
    if c["text"] is not None or c["html"] is None:
        check_text(parts[i], c["text"] or "", c["charset"], "text/plain")
        i += 1
    if c["html"] is not None:
        check_text(parts[i], c["html"], c["charset"], "text/html")
        i += 1
    for disk, data, ctype, want_type in c["inline"]:
        p = parts[i]
        i += 1
        assert p.get_content_type() == want_type
        assert p.get_content_disposition() == "inline"
        assert p["Content-ID"] == "<%s>" % disk, p["Content-ID"]
        assert p.get_filename() == disk
        assert p.get_payload(decode=True) == data, "inline %s differs" % disk
    for disk, data, name, ctype, want_name, want_type in c["attach"]:
        p = parts[i]
        i += 1
        assert p.get_content_type() == want_type, (p.get_content_type(), want_type)
        assert p.get_content_disposition() == "attachment"
        assert p.get_filename() == want_name, (p.get_filename(), want_name)
        got = p.get_payload(decode=True)
        assert got == data, "attachment %s differs (%d vs %d octets)" % (disk, len(got),
                                                                          len(data))
    assert i == len(parts), "%d parts, expected %d" % (len(parts), i)


def roundtrip(c):
    d = harness.tmpdir("pigeon-rt-")
    args = write_inputs(c, d)
    bcc = [m[1] + "@" + m[2] for r in c["bcc"] for m in r.expect]
    raw, msg = expect_ok(*dry_run(*args), bcc=bcc)
    assert structure(msg) == expected_tree(c), structure(msg)
    check_addresses(c, msg, raw)
    check_headers(c, msg)
    check_bodies(c, msg)


def make_test(c):
    def t():
        roundtrip(c)
    t.__name__ = c["name"]
    return t


assert len(CASES) >= 40, len(CASES)
for _c in CASES:
    test(make_test(_c), name=_c["name"])

if __name__ == "__main__":
    harness.run()
