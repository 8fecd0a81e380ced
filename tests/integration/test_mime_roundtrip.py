#!/usr/bin/python3
"""Messages composed by libpigeon, read back by an independent parser (Python's email).

tests/integration/tool_mimewrite composes a message from options and writes it to stdout;
this test parses it with email.message_from_bytes(policy=default) and checks what a
recipient's client would see: the structure (RFC 2046, RFC 2387), decoded header text
(RFC 2047), attachment names (RFC 2231), the exact bytes of every body and attachment,
no parser defects, CRLF line endings and line limits (RFC 5322 2.1.1).
"""
import email
import email.policy
import os
import random
import subprocess
import sys
import tempfile

BUILD = os.environ.get("PIGEON_BUILD_DIR", "build")
TOOL = os.path.join(BUILD, "tool_mimewrite")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def compose(*args):
    out = subprocess.run([TOOL, *args], capture_output=True, timeout=60)
    return out.returncode, out.stdout, out.stderr.decode("utf-8", "replace")


def line_rules(data, max_header=78):
    """CRLF only, no line over 998, no header line over max_header."""
    if b"\r\n" in data.replace(b"\r\n", b""):
        return "stray CRLF"
    lines = data.split(b"\r\n")
    if lines[-1] != b"":
        return "does not end with CRLF"
    for line in lines:
        if b"\r" in line or b"\n" in line:
            return "bare CR or LF"
        if len(line) > 998:
            return "line over 998"
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if len(line) > max_header:
            return f"header line of {len(line)}: {line[:60]!r}"
    return None


def all_defects(msg):
    return [(p.get_content_type(), d) for p in msg.walk() for d in p.defects]


def write(d, name, data):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def full_message(d):
    rnd = random.Random(1)
    text = "你好 Bob,\n\n这是周报。Line two.\n" + "A long line " * 20 + "\n"
    html = '<html><body><p>你好</p><img src="cid:logo@example.cn"></body></html>\n'
    png = b"\x89PNG\r\n\x1a\n" + bytes(rnd.randrange(256) for _ in range(5000))
    xlsx = bytes(rnd.randrange(256) for _ in range(2_500_000))
    csv = b"name,value\r\na,1\r\nb,2\r\n"
    streamed = bytes(rnd.randrange(256) for _ in range(300_000))
    subject = ("周报 — weekly report with a rather long subject line that needs folding "
               "测试测试 and some more words at the end")
    files = {
        "text": write(d, "body.txt", text.encode()),
        "html": write(d, "body.html", html.encode()),
        "png": write(d, "logo.png", png),
        "xlsx": write(d, "data.bin", xlsx),
        "csv": write(d, "table.csv", csv),
        "stream": write(d, "stream.dat", streamed),
    }
    rc, data, err = compose(
        "--date", "1795681461",
        "--from", "张三 <zhangsan@example.cn>",
        "--to", "Bob Smith <bob@example.org>, 李四 <lisi@example.cn>",
        "--cc", "team@example.cn", "--bcc", "Hidden <hidden@example.org>",
        "--reply-to", "replies@example.cn", "--subject", subject,
        "--header", "X-Note=备注 note", "--references", "<a@example.cn> <b@example.cn>",
        "--text", files["text"], "--html", files["html"],
        "--inline", files["png"] + "=logo@example.cn",
        "--attach-as", files["xlsx"] + "=数据 报告 2026.xlsx",
        "--attach", files["csv"],
        "--stream", files["stream"] + "=stream.dat")
    check("full: composed", rc == 0, err)
    if rc != 0:
        return
    check("full: line rules", line_rules(data) is None, line_rules(data))
    msg = email.message_from_bytes(data, policy=email.policy.default)
    check("full: no parser defects", all_defects(msg) == [], str(all_defects(msg)))
    shape = [(p.get_content_type()) for p in msg.walk()]
    check("full: structure", shape == [
        "multipart/mixed", "multipart/related", "multipart/alternative", "text/plain",
        "text/html", "image/png",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "text/csv",
        "application/octet-stream"], str(shape))
    check("full: subject decodes", str(msg["subject"]) == subject, str(msg["subject"]))
    frm = msg["from"].addresses[0]
    check("full: From display name", frm.display_name == "张三" and
          frm.addr_spec == "zhangsan@example.cn", str(frm))
    to = [a.display_name for a in msg["to"].addresses]
    check("full: To names", to == ["Bob Smith", "李四"], str(to))
    check("full: X-Note decodes", str(msg["x-note"]) == "备注 note", str(msg["x-note"]))
    check("full: no Bcc", msg["bcc"] is None and b"hidden@" not in data.lower())
    parts = list(msg.walk())
    plain, html_part, img, xl, table, st = parts[3], parts[4], parts[5], parts[6], parts[7], parts[8]
    check("full: text body", plain.get_content().replace("\r\n", "\n") == text)
    check("full: html body", html_part.get_content().replace("\r\n", "\n") == html)
    check("full: inline image", img.get_payload(decode=True) == png and
          img["content-id"] == "<logo@example.cn>" and
          img.get_content_disposition() == "inline")
    check("full: attachment name (RFC 2231)", xl.get_filename() == "数据 报告 2026.xlsx",
          str(xl.get_filename()))
    check("full: attachment name= (RFC 2047, for QQ Mail/Outlook)",
          str(xl.get_param("name")) == "数据 报告 2026.xlsx", str(xl.get_param("name")))
    check("full: attachment bytes", xl.get_payload(decode=True) == xlsx)
    check("full: csv attachment exact", table.get_payload(decode=True) == csv and
          table.get_filename() == "table.csv")
    check("full: stream attachment exact", st.get_payload(decode=True) == streamed)
    check("full: References", str(msg["references"]) == "<a@example.cn> <b@example.cn>")
    check("full: Message-ID domain", str(msg["message-id"]).endswith("@example.cn>"))


def charsets(d):
    text = "中文邮件 test ✓\n第二行\n"
    path = write(d, "zh.txt", text.encode())
    base = ["--from", "a@example.com", "--to", "b@example.org", "--text", path]
    rc, data, err = compose(*base)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    check("utf-8: 7bit-safe without --8bit", rc == 0 and max(data) < 0x80 and
          msg["content-transfer-encoding"] in ("base64", "quoted-printable"))
    check("utf-8: decodes", msg.get_content().replace("\r\n", "\n") == text)
    rc, data, err = compose("--8bit", *base)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    check("utf-8: 8bit when allowed", rc == 0 and msg["content-transfer-encoding"] == "8bit"
          and "中文邮件".encode() in data)
    check("utf-8 8bit: decodes", msg.get_content().replace("\r\n", "\n") == text)
    rc, data, err = compose("--charset", "gb18030", *base)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    check("gb18030: charset parameter", rc == 0 and msg.get_content_charset() == "gb18030")
    check("gb18030: decodes", msg.get_content().replace("\r\n", "\n") == text)
    check("gb18030: bytes are GB18030", msg.get_payload(decode=True) ==
          text.replace("\n", "\r\n").encode("gb18030"))
    rc, data, err = compose("--charset", "gbk", *base)
    check("gbk: unrepresentable refused", rc == 1 and "PIGEON_ERR_CHARSET" in err, err)


def refusals(d):
    base = ["--from", "a@example.com", "--to", "b@example.org"]
    cases = [
        ("subject CRLF", ["--subject", "hi\r\nBcc: x@evil.example"], "PIGEON_ERR_HEADER"),
        ("custom header LF", ["--header", "X-A=b\nBcc: x@evil.example"], "PIGEON_ERR_HEADER"),
        ("custom From", ["--header", "From=boss@example.com"], "PIGEON_ERR_HEADER"),
        ("To CRLF", ["--to", "c@example.org\r\nBcc: x@evil.example"], "PIGEON_ERR_ADDRESS"),
        ("UTF-8 local part without SMTPUTF8", ["--to", "用户@example.cn"], "PIGEON_ERR_ADDRESS"),
    ]
    for name, extra, code in cases:
        rc, data, err = compose(*base, *extra)
        check(f"refused: {name}", rc == 1 and code in err and data == b"", err)
    rc, data, err = compose("--smtputf8", *base, "--to", "用户@例子.cn")
    check("SMTPUTF8: UTF-8 address written raw", rc == 0 and "用户@例子.cn".encode() in data,
          err)


def main():
    if not os.path.exists(TOOL):
        print(f"FAIL {TOOL} not built")
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as d:
        full_message(d)
        charsets(d)
        refusals(d)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
