#!/usr/bin/python3
"""Round trip of pigeon's header encoders through Python's email package.

Builds header fields with pigeon's encoders (driven by tool_encode) from tricky inputs
(CJK, emoji, RTL, long subjects, display names with specials, encoded-word lookalikes,
odd white space), parses them back with email.message_from_bytes(policy=email.policy.default)
and checks the value equals the input, and that the wire form is folded ASCII.

What "exact round trip" means (decided here, see lib/codec/rfc2047.c):
  * Subject (unstructured text): exact, white space included. Leading and trailing white
    space and long runs are carried inside encoded-words, which Python keeps.
  * Display names: exact for ASCII names (atoms or one quoted-string) and for non-ASCII
    names that fit one encoded-word with single spaces. Python 3.11 does not apply
    RFC 2047 6.2 inside a phrase: it keeps a space at each boundary between adjacent
    encoded-words and collapses white space runs inside them. For those names we check
    Python's reading against that model, and pg_ew_decode (which follows the RFC) exactly.
  * Parameters (filename): exact, except that Python strips leading and trailing white
    space of every filename; those compare stripped.
  * pg_ew_decode also decodes what Python's own encoder writes, and words in legacy
    charsets encoded with Python's codecs.
"""
import base64
import email
import email.header
import email.policy
import email.utils
import os
import random
import re
import subprocess
import sys

BUILD = os.environ.get("PIGEON_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
TOOL = os.path.join(BUILD, "tool_encode")

passed = 0
failed = 0


class Tool:
    """The batch protocol of tool_encode.c."""

    def __init__(self):
        self.p = subprocess.Popen([TOOL], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def call(self, op, value, arg="-", col=0):
        if isinstance(value, str):
            value = value.encode("utf-8")
        self.p.stdin.write(b"%s %s %d %d\n" % (op.encode(), arg.encode(), col, len(value)))
        self.p.stdin.write(value)
        self.p.stdin.flush()
        status, n, newcol = self.p.stdout.readline().split()[:3]
        if status != b"OK":
            raise RuntimeError(n.decode())
        return self.p.stdout.read(int(n)), int(newcol)

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def wire_problems(field):
    """Folding rules of RFC 5322 2.1.1 and 2.2.3 on a complete field (ending in CRLF)."""
    if not field.endswith(b"\r\n"):
        return "no final CRLF"
    lines = field[:-2].split(b"\r\n")
    for i, line in enumerate(lines):
        if any(c > 126 or (c < 32 and c != 9) for c in line):
            return "non-ASCII or control byte in %r" % line
        if len(line) > 78:
            return "line over 78: %r" % line
        if i > 0 and (not line or line[:1] not in b" \t"):
            return "continuation without white space: %r" % line
        if line.strip(b" \t") == b"":
            return "white-space-only line"
        if line[-1:] in b" \t":
            return "line ends in white space: %r" % line
    return None


def address_after(col):
    """The angle-addr after a display name, folded before it as a composer would."""
    return (b" " if col + 8 <= 78 else b"\r\n ") + b"<a@b.c>\r\n"


def python_filename(s):
    """Python strips white space around a filename, then also one pair of enclosing
    quotes or angle brackets (email.utils.collapse_rfc2231_value calls unquote())."""
    s = s.strip()
    if len(s) >= 2 and (s[0] + s[-1] in ('""', "<>")):
        return email.utils.unquote(s)
    return s


def parse(headers):
    return email.message_from_bytes(headers + b"\r\n\r\nbody\r\n", policy=email.policy.default)


SUBJECTS = [
    "Hello world",
    "你好，世界",
    "关于下周会议的安排（请查收附件）",
    "日本語のテキスト、カタカナとひらがな",
    "お問い合わせいただきありがとうございます。担当者より折り返しご連絡いたします。",
    "🎉 Party time 🥳🎂 at 8pm",
    "👨‍👩‍👧‍👦 family photo 🇯🇵",
    "مرحبا بالعالم - اجتماع الغد",
    "שלום עולם, מה שלומך?",
    "Re: [Project] 更新 update — ¡Hola! Ñandú café",
    "Привет, мир! Как дела?",
    "한국어 제목 테스트",
    "Ελληνικά και English",
    "Re: [ticket #123] (urgent) \"quoted\" \\ back ;:,<>@",
    "50% off!!! $$$ a_b=c?d",
    "  leading spaces",
    "trailing spaces  ",
    "multiple   spaces   inside",
    "tab\there and\t\tthere",
    " ",
    "   ",
    "\t",
    "a \t b",
    "x" + " " * 100 + "y",
    "中文" + " " * 90 + "文字",
    "=?UTF-8?Q?=0D=0A?=",
    "=?UTF-8?Q?=0D=0A?= Bcc: evil@example.com",
    "foo=?bar?=baz",
    "=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=",
    "=? ?= =?",
    "word 中 word 文 word",
    "中 文",
    "x" * 77,
    "x" * 78,
    "y" * 200,
    "z" * 1200,
    "See https://example.com/a/very/long/path/that/goes/on/and/on/for/quite/a/while/index.html?x=1",
    "长" * 200 + " ascii words here " * 3,
    ("The quick brown fox jumps over the lazy dog. " * 12)[:500],
    ("混合 mixed テキスト text 🎉 " * 30)[:500],
    "\u00a0non-breaking\u00a0spaces\u00a0",
    "a\u200bzero\u200bwidth",
    "e\u0301 combining",
    "\U0001F600" * 40,
    "DEL\x7fand\x01controls",
]

NAMES = [
    "John Smith",
    "Zhang, San",
    'John "Johnny" Doe',
    "back\\slash",
    "O'Brien",
    "Dr. John Q. Public",
    "张三",
    "Zhang San 张三",
    "Müller, Hans",
    "  Bob  ",
    "Bob  Smith",
    "a@b.c",
    "<script>alert(1)</script>",
    "=?UTF-8?Q?=0D=0A?=",
    "=?utf-8?b?Zm9v?= Mallory",
    "Ana María (Sales)",
    "محمد علي",
    "דוד לוי",
    "山田 太郎",
    "🎉 Party Bot",
    "Tab\tName",
    "x",
    "A very long ASCII display name with many words that will need folding somewhere",
    "Smith, " + "Very " * 20 + "Long",
    "很长的中文名字" * 4,
    "Долгое имя пользователя с пробелами и запятыми, да",
]

FILENAMES = [
    "simple.txt",
    "报告.pdf",
    "résumé final.docx",
    "a b.txt",
    'quote".txt',
    "semi;colon=and?question.txt",
    "長いファイル名" * 10 + ".zip",
    "emoji 🎉.png",
    "=?UTF-8?B?Zm9v?=.txt",
    "x" * 200 + ".txt",
    "tab\tname.txt",
    "100%.txt",
    "it's (1).txt",
    "This is even more ***fun*** isn't it!",
    " leading.txt",
    "مستند.pdf",
    "a\\b.txt",
]


def subject_checks(tool):
    for s in SUBJECTS:
        for name in ("Subject", "X-A-Rather-Long-Custom-Header-Name-For-Testing"):
            field, _ = tool.call("subject", s, arg=name)
            prob = wire_problems(field)
            check("subject wire %r" % s[:40], prob is None, "%s\n%s" % (prob, field.decode()))
            got = parse(field)[name]
            check("subject python %r" % s[:40], str(got) == s, "\n got %r\nwant %r\n%s" % (str(got), s, field.decode()))
            value = field[len(name) + 2:-2]
            dec, _ = tool.call("decode", value)
            check("subject pg_ew_decode %r" % s[:40], dec.decode() == s, "got %r" % dec)


def split_ews(value):
    return re.findall(rb"=\?UTF-8\?([BQ])\?([^?]*)\?=", value)


def ew_text(enc, text):
    if enc == b"B":
        return base64.b64decode(text).decode()
    raw = re.sub(rb"=([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.replace(b"_", b" "))
    return raw.decode()


def python_phrase_model(value, s):
    """Python 3.11's reading of a phrase of encoded-words (see the module comment)."""
    words = split_ews(value)
    if not words:
        return s
    return " ".join(re.sub(r"[ \t]+", " ", ew_text(e, t)) for e, t in words)


def name_checks(tool):
    for s in NAMES:
        enc, col = tool.call("phrase", s, col=4)
        field = b"To: " + enc + address_after(col)
        prob = wire_problems(field)
        check("name wire %r" % s, prob is None, "%s\n%s" % (prob, field.decode()))
        addr = parse(field)["To"].addresses
        check("name one address %r" % s, len(addr) == 1 and addr[0].addr_spec == "a@b.c", repr(addr))
        got = addr[0].display_name if addr else None
        want = python_phrase_model(enc, s)
        single = len(split_ews(enc)) <= 1 and (not split_ews(enc) or s == " ".join(s.split()))
        check("name python %r" % s, got == want and (not single or got == s),
              "\n got %r\nwant %r\n%s" % (got, want, field.decode()))
        if split_ews(enc):
            dec, _ = tool.call("decode", enc)
            check("name pg_ew_decode %r" % s, dec.decode() == s, repr(dec))


def param_checks(tool):
    for s in FILENAMES:
        want = python_filename(s)
        for op in ("param", "param_ew"):
            prefix = b"Content-Disposition: attachment"
            enc, _ = tool.call(op, s, arg="filename", col=len(prefix))
            field = prefix + enc + b"\r\n"
            prob = wire_problems(field)
            check("%s wire %r" % (op, s[:30]), prob is None, "%s\n%s" % (prob, field.decode()))
            got = parse(field).get_filename()
            check("%s python %r" % (op, s[:30]), got == want, "\n got %r\nwant %r\n%s" % (got, want, field.decode()))
            prefix = b"Content-Type: application/octet-stream"
            enc, _ = tool.call(op, s, arg="name", col=len(prefix))
            got = parse(prefix + enc + b"\r\n").get_filename()
            check("%s python name= %r" % (op, s[:30]), got == want, "got %r" % got)


def decode_checks(tool):
    # RFC 2047 section 8, in comments and phrases.
    rfc = [
        ("(=?ISO-8859-1?Q?a?=)", "(a)"),
        ("(=?ISO-8859-1?Q?a?= b)", "(a b)"),
        ("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)"),
        ("(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "(ab)"),
        ("(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)"),
        ("(=?ISO-8859-1?Q?a_b?=)", "(a b)"),
        ("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)"),
        ("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>", "Keith Moore <moore@cs.utk.edu>"),
        ("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=", "Keld Jørn Simonsen"),
        ("=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"),
        ("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
         "If you can read this you understand the example."),
        ("=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"),
    ]
    for raw, want in rfc:
        dec, _ = tool.call("decode", raw)
        check("decode rfc2047 %r" % raw, dec.decode() == want, repr(dec))
    # Legacy charsets, encoded by Python's own codecs.
    samples = [
        ("ISO-8859-1", "Grüße aus Köln"), ("windows-1252", "“smart” quotes €"),
        ("ISO-2022-JP", "日本語の件名です"), ("Shift_JIS", "日本語の件名"), ("EUC-JP", "東京都"),
        ("GB2312", "你好世界"), ("GBK", "中文邮件"), ("GB18030", "中文 🎉"), ("Big5", "繁體中文"),
        ("KOI8-R", "Привет"), ("ISO-8859-8", "שלום"), ("windows-1256", "مرحبا"),
        ("EUC-KR", "안녕하세요"), ("UTF-16", "utf sixteen ✓"),
    ]
    for cs, text in samples:
        raw = text.encode(cs)
        for word in ("=?%s?B?%s?=" % (cs, base64.b64encode(raw).decode()),
                     "=?%s?Q?%s?=" % (cs, "".join("=%02X" % b for b in raw))):
            dec, _ = tool.call("decode", word)
            check("decode %s" % cs, dec.decode() == text, "%r -> %r" % (word, dec))
    # What Python's encoders write decodes to the same text.
    for s in SUBJECTS[:30]:
        if s != s.strip() or "  " in s or "=?" in s:
            continue  # Python's own encoders do not preserve these exactly
        legacy = email.header.Header(s, "utf-8", header_name="Subject").encode().encode()
        dec, _ = tool.call("decode", legacy)
        check("decode python Header %r" % s[:30], dec.decode() == s, "%r -> %r" % (legacy, dec))
    try:
        tool.call("decode", "=?X-NO-SUCH-CHARSET?Q?a?=")
        check("decode unknown charset", False)
    except RuntimeError as e:
        check("decode unknown charset", "PIGEON_ERR_CHARSET" in str(e), str(e))


def random_checks(tool):
    rng = random.Random(2047)
    alphabet = list("ab Z9=?_\"\\,;:()<>@. \t\t") + ["中", "é", "🎉", "ب", "\u200b", "=?", "?=", "=?UTF-8?Q?"]
    for i in range(300):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120)))
        field, _ = tool.call("subject", s, arg="Subject")
        prob = wire_problems(field)
        got = str(parse(field)["Subject"])
        check("random subject %d" % i, prob is None and got == s, "%s\n got %r\nwant %r\n%s" % (prob, got, s, field.decode()))
        enc, col = tool.call("phrase", s, col=4)
        field = b"To: " + enc + address_after(col)
        prob = wire_problems(field)
        addr = parse(field)["To"].addresses
        ok = prob is None and len(addr) == 1 and addr[0].addr_spec == "a@b.c"
        check("random name %d" % i, ok, "%s %r\n%s" % (prob, addr, field.decode()))
        if ok and not split_ews(enc):
            check("random ascii name %d" % i, addr[0].display_name == s, repr(addr[0].display_name))
        enc, _ = tool.call("param", s, arg="filename", col=31)
        field = b"Content-Disposition: attachment" + enc + b"\r\n"
        got = parse(field).get_filename()
        check("random filename %d" % i, wire_problems(field) is None and got == python_filename(s),
              "\n got %r\nwant %r\n%s" % (got, python_filename(s), field.decode()))


def body_checks(tool):
    """Transfer encodings read back by Python's quopri and base64 modules."""
    import quopri
    rng = random.Random(2045)
    samples = [b"", b"abc", b"line one\r\nline two\r\n", b"trailing \r\n\t\r\n", b"a=b\r\n",
               "中文正文，第二行。\r\n".encode() * 20, b"x" * 300, b".dot\r\nFrom me\r\n"]
    samples += [bytes(rng.choice(b"ab =\t\r\n.\xe4") for _ in range(rng.randint(0, 400))) for _ in range(60)]
    for i, raw in enumerate(samples):
        enc, _ = tool.call("qp", raw)
        lines = enc.split(b"\r\n")
        ok = all(len(l) <= 76 and not l.endswith((b" ", b"\t")) for l in lines)
        ok = ok and (raw == b"" or enc.endswith(b"\r\n"))
        check("qp lines %d" % i, ok, repr(enc[:200]))
        check("qp quopri %d" % i, quopri.decodestring(enc) == raw, repr(enc[:200]))
        enc, _ = tool.call("b64", raw)
        check("base64 %d" % i, base64.b64decode(enc, validate=True) == raw)


def main():
    if not os.path.exists(TOOL):
        print("missing %s" % TOOL)
        print("0 passed, 1 failed")
        return 1
    tool = Tool()
    try:
        subject_checks(tool)
        name_checks(tool)
        param_checks(tool)
        decode_checks(tool)
        body_checks(tool)
        random_checks(tool)
    finally:
        tool.close()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
