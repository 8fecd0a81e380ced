"""Pigeon's address header output, read back by an independent parser.

For each tricky address list a user might type, tool_address prints what pigeon's
parser extracted and the header value pigeon writes (pg_address_list_format).  Python's
email package (policy.default, headerregistry) then parses "To: <that value>" and every
group, display name, local part, domain and addr-spec it reads must be what pigeon
extracted from the original input, with no parse defects and no line over 78.

Known deviation of Python (3.11) handled below: headerregistry keeps the white space
between two adjacent encoded-words of a display name as a space, where RFC 2047 6.2 says
it is to be ignored (a long Chinese name needs several encoded-words, so Python reads
"张三...吴 十郑..."). For such names the test checks instead that Python's own RFC 2047
decoder (email.header.decode_header, which does follow 6.2) reads exactly pigeon's name
from the raw display-name text, and that headerregistry differs only by added spaces.
"""

import email
import email.errors
import email.header
import email.policy
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import test  # noqa: E402

LONG_LIST = ", ".join("user%02d@example%02d.org" % (i, i) for i in range(12))

INPUTS = [
    '"Zhang, San" <zhang.san@example.cn>',
    "张三 <zhangsan@qq.com>",
    "=?UTF-8?B?5byg5LiJ?= <a@qq.com>",
    "=?UTF-8?B?5byg?= =?UTF-8?B?5LiJ?= <x@qq.com>",
    "=?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>",
    "Dr. =?UTF-8?Q?Andr=C3=A9?= Smith <as@example.org>",
    "山田太郎 <taro@example.jp>",
    '"山田, 太郎" <taro@example.jp>',
    "한국어 이름 <korean@example.kr>",
    "Имя Фамилия <ru@example.ru>",
    '"مرحبا" <ar@example.org>',
    "Émile Zola <emile@example.fr>",
    "😀 Smiley 🎉 <smile@example.com>",
    '"Ünïcödé, Ñame" <u@example.org>',
    '"Mixed 中文 and English, with comma" <mix@example.org>',
    '"O\'Brien, Dr. Pat" <pat@example.ie>',
    '"Back\\\\slash" <bs@example.org>',
    '"Quote \\"Q\\" Man" <q@example.org>',
    '"=?UTF-8?B?5byg5LiJ?=" <lookalike@example.org>',
    '"=?utf-8?q?hello?= world" <l2@example.org>',
    '"Name; with; semicolons" <s@example.org>',
    '"Name (not a comment)" <c@example.org>',
    '"<angle>" <ang@example.org>',
    "Zhang San (a comment) <zs@example.org>",
    '"  padded   name  " <p@example.org>',
    "John Q. Public <jqp@example.org>",
    '"Aaaaaaaaaa Bbbbbbbbbb Cccccccccc Dddddddddd Eeeeeeeeee Ffffffffff Gggggggggg" '
    "<long.name@example.org>",
    "张三李四王五赵六钱七孙八周九吴十郑十一王十二冯十三陈十四褚十五卫十六 <long@qq.com>",
    '"x@y" <ok@example.org>',
    '"a@evil x"@ok.com',
    '"john doe"@example.com',
    '"a\\"b"@example.org',
    '"very.unusual.@.unusual.com"@example.com',
    "a@bücher.example",
    "a@XN--BCHER-KVA.example",
    "用户@例子.广告",
    "a@[127.0.0.1]",
    'Team: a@x.cn, "B, C" <b@y.cn>;',
    "undisclosed-recipients:;",
    "项目组: 张三 <a@qq.com>, 李四 <b@qq.com>;",
    'G: "Zhang, San" <a@b.cn>;, other@example.org, Empty:;',
    LONG_LIST,
]

# Inputs pigeon must refuse: each could put a different address on the envelope than
# in the header, or smuggle a header.
REFUSED = [
    "a@b@c.org",
    "a@b.org <d@e.org>",
    "<a@b.org> junk",
    "a b@c.org",
    "a..b@c.org",
    ".a@b.org",
    '"unbalanced <a@b.org>',
    "(unbalanced a@b.org",
    "<a@b.org",
    "a@b.org\r\nBcc: victim@example.org",
    "a@b.org\nBcc: victim@example.org",
    "Name <a@b.org>\x00x",
    "=?UTF-8?B?QQ0KQmNjOiB2aWN0aW1AZXhhbXBsZS5vcmc=?= <a@b.org>",
    "<@relay.org:a@b.org>",
    "a@b.org.",
    "a@b_c.org",
]


def unhex(field):
    if field == "-":
        return None
    if field == "=":
        return ""
    return bytes.fromhex(field).decode("utf-8")


def run_tool(inputs, ascii_mode=False):
    """Runs tool_address; returns one dict per input."""
    tool = harness.build_tool("address")
    args = [tool] + (["--ascii"] if ascii_mode else []) + list(inputs)
    rc, out, err = harness.run_cmd(args, timeout=30)
    assert rc == 0, "tool_address failed: %r" % err
    results, cur = [], None
    for line in out.decode().splitlines():
        kind, *fields = line.split(" ")
        if cur is None:
            cur = {"mailboxes": [], "empty": [], "header": None, "error": None}
        if kind == "ERR":
            cur["error"] = unhex(fields[0])
        elif kind == "MB":
            name, local, domain, ascii, group, spec = (unhex(f) for f in fields)
            cur["mailboxes"].append({"name": name, "local": local, "domain": domain,
                                     "ascii": ascii, "group": group, "spec": spec})
        elif kind == "EG":
            cur["empty"].append(unhex(fields[0]))
        elif kind == "HDR":
            cur["header"] = unhex(fields[0])
        elif kind == "END":
            results.append(cur)
            cur = None
    assert len(results) == len(inputs), out
    return results


ENCODED_WORDS = r"((?:=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=\s*){2,})"


def python_reading(header):
    """What Python's email package reads from "To: <header>": a list of
    (group, display_name, username, domain, addr_spec) and the empty group names."""
    msg = email.message_from_string("To: " + header + "\r\n\r\nbody\r\n",
                                    policy=email.policy.default)
    to = msg["To"]
    # Python's parser predates RFC 6532 local parts and flags them; nothing else may be.
    defects = [d for d in to.defects
               if not isinstance(d, email.errors.NonASCIILocalPartDefect)]
    assert not defects, "Python found defects %r in %r" % (defects, header)
    boxes, empty = [], []
    for group in to.groups:
        if group.display_name is not None and not group.addresses:
            empty.append(group.display_name)
        for a in group.addresses:
            boxes.append((group.display_name, a.display_name, a.username, a.domain,
                          a.addr_spec))
    return boxes, empty


def same_name(python_name, header, spec, want):
    """Python's display name equals pigeon's, or differs only by the spaces headerregistry
    leaves between adjacent encoded-words while decode_header (RFC 2047 6.2) reads the
    raw encoded-words in front of <spec> as exactly pigeon's name."""
    if python_name == want:
        return True
    m = re.search(ENCODED_WORDS + re.escape("<" + spec + ">"), header.replace("\r\n", ""))
    if m is None:
        return False
    rfc_reading = str(email.header.make_header(email.header.decode_header(m.group(1).strip())))
    return rfc_reading == want and python_name.replace(" ", "") == want.replace(" ", "")


def check_lines(header):
    for i, line in enumerate(("To: " + header).split("\r\n")):
        assert len(line) <= 78, "line %d is %d long: %r" % (i, len(line), line)
        if i > 0:
            assert line.startswith(" "), "fold without white space: %r" % line


def compare(typed, result, ascii_mode):
    assert result["error"] is None, "pigeon refused %r: %s" % (typed, result["error"])
    header = result["header"]
    check_lines(header)
    boxes, empty = python_reading(header)
    want = result["mailboxes"]
    assert len(boxes) == len(want), "%r: Python reads %d mailboxes from %r, pigeon %d" % (
        typed, len(boxes), header, len(want))
    for (group, name, user, domain, spec), mb in zip(boxes, want):
        where = "%r written as %r" % (typed, header)
        assert group == mb["group"], "%s: group %r != %r" % (where, group, mb["group"])
        assert same_name(name, header, mb["spec"], mb["name"] or ""), \
            "%s: name %r != %r" % (where, name, mb["name"])
        assert user == mb["local"], "%s: local %r != %r" % (where, user, mb["local"])
        want_domain = mb["ascii"] if ascii_mode else mb["domain"]
        assert domain == want_domain, "%s: domain %r != %r" % (where, domain, want_domain)
        assert spec == mb["spec"], "%s: addr-spec %r != %r" % (where, spec, mb["spec"])
    assert empty == result["empty"], "%r: empty groups %r != %r" % (typed, empty,
                                                                   result["empty"])


@test
def python_reads_what_pigeon_parsed_utf8():
    for typed, result in zip(INPUTS, run_tool(INPUTS)):
        compare(typed, result, ascii_mode=False)


@test
def python_reads_what_pigeon_parsed_ascii():
    ascii_inputs = [s for s in INPUTS if "用户" not in s]
    for typed, result in zip(ascii_inputs, run_tool(ascii_inputs, ascii_mode=True)):
        assert all(ord(c) < 128 for c in result["header"]), result["header"]
        compare(typed, result, ascii_mode=True)


@test
def pigeon_extracts_the_expected_fields():
    # Spot checks that the table above really exercises what it claims.
    r = dict(zip(INPUTS, run_tool(INPUTS)))
    assert r['"Zhang, San" <zhang.san@example.cn>']["mailboxes"][0]["name"] == "Zhang, San"
    assert r["=?UTF-8?B?5byg5LiJ?= <a@qq.com>"]["mailboxes"][0]["name"] == "张三"
    assert r["=?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>"]["mailboxes"][0]["name"] == "André"
    lookalike = r['"=?UTF-8?B?5byg5LiJ?=" <lookalike@example.org>']["mailboxes"][0]
    assert lookalike["name"] == "=?UTF-8?B?5byg5LiJ?="
    evil = r['"a@evil x"@ok.com']["mailboxes"][0]
    assert (evil["local"], evil["domain"], evil["spec"]) == ("a@evil x", "ok.com",
                                                             '"a@evil x"@ok.com')
    idn = r["a@bücher.example"]["mailboxes"][0]
    assert (idn["domain"], idn["ascii"]) == ("bücher.example", "xn--bcher-kva.example")
    assert "\r\n" in r[LONG_LIST]["header"]
    assert r["undisclosed-recipients:;"]["empty"] == ["undisclosed-recipients"]


@test
def smuggling_inputs_are_refused():
    for typed, result in zip(REFUSED, run_tool([s.replace("\x00", "") for s in REFUSED])):
        if "\x00" in typed:
            continue  # argv cannot carry NUL; the unit tests cover it
        assert result["error"] is not None, "pigeon accepted %r as %r" % (
            typed, result["mailboxes"])
        assert result["error"].startswith("invalid address "), result["error"]
        assert "\n" not in result["error"] and "\r" not in result["error"]


if __name__ == "__main__":
    harness.run()
