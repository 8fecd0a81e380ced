#!/usr/bin/python3
"""HTML mail end to end: `pigeon send --html-file / --markdown-file` against independent
readers and peers.

- The inlined HTML of every corpus document (Foundation for Emails' templates made with
  inky and Foundation's CSS, MJML-compiled templates, tests/corpus/html/*) is compared
  element by element with juice's (htmlcompare.py). Every difference must be a
  documented juice bug (JUICE_BUGS, the browser as referee).
- The composed messages are read back by Python's email package and by mailparser:
  structure (related > alternative > text + html, images), cid: references that resolve,
  the generated text part.
- SpamAssassin (offline, -L -t) fires none of the rules about the message's own form.
- Errors: a missing image is exit 66 naming it; pathological input never crashes.
"""
import json
import os
import re
import shutil
import subprocess

import harness
import htmlcompare
import mailcheck

# Differences from juice that are juice's bugs, with the browser as referee:
# - width="auto" / height="auto": juice copies CSS `auto` into the attribute, overwriting
#   the author's width="170". HTML (2.3.4.4) allows only a non-negative integer (or a
#   percentage for tables); browsers ignore "auto", so the image falls back to its
#   intrinsic size and Outlook, which reads only the attribute, loses the author's size.
#   pigeon copies px and (on table elements) % values only, and leaves the attribute alone.
JUICE_BUGS = [
    lambda d: d["kind"] == "attr" and d["prop"] in ("width", "height") and d["juice"] == "auto",
]

# SpamAssassin rules about the form of the message (not its words): none may fire.
FORM_RULES = [
    "MIME_HTML_ONLY", "MIME_HTML_MOSTLY", "MIME_HTML_ONLY_MULTI", "MPART_ALT_DIFF",
    "MPART_ALT_DIFF_COUNT", "HTML_IMAGE_ONLY_04", "HTML_IMAGE_ONLY_08", "HTML_IMAGE_ONLY_12",
    "HTML_IMAGE_ONLY_16", "HTML_IMAGE_ONLY_20", "HTML_IMAGE_ONLY_24", "HTML_IMAGE_ONLY_28",
    "HTML_IMAGE_ONLY_32", "HTML_IMAGE_RATIO_02", "HTML_IMAGE_RATIO_04", "HTML_IMAGE_RATIO_06",
    "HTML_IMAGE_RATIO_08", "MISSING_DATE", "MISSING_MID", "MISSING_MIME_HB_SEP",
    "MISSING_HEADERS", "MISSING_FROM", "MISSING_SUBJECT", "MIME_BOUND_DIGITS_15",
    "MIME_BAD_ISO_CHARSET", "MIME_BASE64_TEXT", "MIME_QP_LONG_LINE", "MIME_HEADER_CTYPE_ONLY",
    "MIME_NO_TEXT", "HTML_MISSING_CTYPE", "HTML_MIME_NO_HTML_TAG", "HTML_TAG_BALANCE_BODY",
    "HTML_TAG_BALANCE_HEAD", "HTML_EXTRA_CLOSE", "HTML_SHORT_LINK_IMG_1", "EMPTY_MESSAGE",
    "INVALID_DATE", "INVALID_MSGID", "DATE_IN_FUTURE_03_06", "DATE_IN_PAST_03_06",
    "TVD_SPACE_RATIO", "PYZOR_CHECK", "BASE64_LENGTH_79_INF", "BASE64_LENGTH_78_79",
]

_state = {}


def npm_path():
    if "npm" not in _state:
        script = os.path.join(harness.source_dir(), "scripts", "npm-deps.sh")
        rc, out, err = harness.run_cmd(["bash", script], timeout=600)
        if rc != 0:
            raise harness.Skip("npm peers unavailable: %s" % err.decode()[-200:])
        _state["npm"] = out.decode().strip()
    return _state["npm"]


def node(*args, timeout=120):
    script = os.path.join(harness.source_dir(), "tests", "integration", "html_peers.js")
    rc, out, err = harness.run_cmd(["node", script] + list(args), env={"NODE_PATH": npm_path()},
                                   timeout=timeout)
    assert rc == 0, "node %s: %s" % (args[0], err.decode()[-2000:])
    return out.decode()


def corpus():
    if "corpus" not in _state:
        d = harness.tmpdir("pigeon-html-")
        os.makedirs(os.path.join(d, "src"))
        os.makedirs(os.path.join(d, "juice"))
        node("corpus", os.path.join(d, "src"))
        node("juice", os.path.join(d, "src"), os.path.join(d, "juice"))
        _state["corpus"] = d
    return _state["corpus"]


def names():
    return sorted(f for f in os.listdir(os.path.join(corpus(), "src")) if f.endswith(".html"))


def tool(*args, timeout=120):
    return harness.run_cmd([harness.build_tool("html")] + list(args), timeout=timeout)


@harness.test(timeout=300)
def juice_element_by_element():
    d = corpus()
    kinds = {"inky": 0, "mjml": 0, "edge": 0}
    compared = 0
    problems = []
    for name in names():
        src = os.path.join(d, "src", name)
        rc, ours, err = tool("--no-images", "--no-text", src)
        assert rc == 0, err
        theirs = open(os.path.join(d, "juice", name), encoding="utf-8").read()
        n, diffs = htmlcompare.compare(ours.decode(), theirs)
        assert n > 0, "%s: %s" % (name, diffs[:1])
        compared += n
        kinds[name.split("-")[0]] += 1
        problems += ["%s: %s" % (name, x) for x in diffs if not any(b(x) for b in JUICE_BUGS)]
    assert kinds["inky"] >= 10 and kinds["mjml"] >= 3 and kinds["edge"] >= 2, kinds
    assert not problems, "\n".join(problems[:20])
    assert compared > 1000, compared


def send(args, cwd=None):
    return harness.pigeon("send", "--dry-run", "--from", "Shop <shop@example.com>",
                          "--to", "ann@example.org", "--subject", "Your order", *args, cwd=cwd)


def parts(msg):
    return [(p.get_content_type(), p) for p in msg.walk()]


@harness.test(timeout=300)
def corpus_round_trip_python_and_mailparser():
    d = corpus()
    out = os.path.join(d, "eml")
    os.makedirs(out, exist_ok=True)
    files = []
    for name in names():
        rc, raw, err = send(["--html-file", os.path.join(d, "src", name)])
        assert rc == 0, err
        raw_msg, msg = mailcheck.expect_ok(rc, raw, err)
        types = [t for t, _ in parts(msg)]
        assert types[:3] == ["multipart/alternative", "text/plain", "text/html"], types
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert len(text.strip()) > 20 and "<" not in text.replace("<http", ""), text[:200]
        assert max(len(line) for line in text.splitlines()) <= 78 or "http" in text
        assert "style=\"" in html
        path = os.path.join(out, name + ".eml")
        with open(path, "wb") as f:
            f.write(raw)
        files.append(path)
    for line in node("parse", *files).splitlines():
        m = json.loads(line)
        assert m["subject"] == "Your order"
        assert m["html"] and "style=" in m["html"], m["file"]
        assert m["text"] and len(m["text"].strip()) > 20, m["file"]


def image_dir():
    d = harness.tmpdir("pigeon-img-")
    os.makedirs(os.path.join(d, "img"))
    gif = bytes.fromhex("47494638396101000100800000ffffff00000021f90401000000002c00000000"
                        "010001000002024401003b")
    for p in ("logo.gif", "img/bg.gif"):
        with open(os.path.join(d, p), "wb") as f:
            f.write(gif)
    with open(os.path.join(d, "mail.html"), "w") as f:
        f.write("<html><head><style>.hero { background: url(img/bg.gif) } "
                "p { color: #333 }</style></head><body><div class=\"hero\">"
                "<img src=\"logo.gif\" alt=\"Logo\"><p>Hello Ann, your order <b>#42</b> "
                "has shipped.</p><img src=\"logo.gif\" alt=\"\">"
                "<img src=\"data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAAB"
                "AAEAAAICRAEAOw==\" alt=\"dot\"><img src=\"https://cdn.example.com/x.png\">"
                "<p><a href=\"https://example.com/track/42\">Track it</a></p></div>"
                "</body></html>")
    return d


@harness.test(timeout=120)
def images_become_cid_parts():
    d = image_dir()
    rc, raw, err = send(["--html-file", os.path.join(d, "mail.html")])
    raw, msg = mailcheck.expect_ok(rc, raw, err)
    assert msg.get_content_type() == "multipart/related"
    inline = [p for p in msg.walk() if p["Content-ID"]]
    cids = sorted(p["Content-ID"].strip("<>") for p in inline)
    assert len(cids) == 3, cids        # logo twice -> once, the background, the data: URI
    html = msg.get_body(("html",)).get_content()
    for cid in cids:
        assert "cid:" + cid in html, cid
    assert "https://cdn.example.com/x.png" in html
    assert 'src="logo.gif"' not in html and "url(img/bg.gif)" not in html
    assert all(p.get_content_type() == "image/gif" for p in inline)
    text = msg.get_body(("plain",)).get_content()
    assert "Logo" in text and "Track it <https://example.com/track/42>" in text, text
    # Relative paths are relative to the HTML file, not to the working directory.
    rc, raw2, err = send(["--html-file", "mail.html"], cwd=d)
    assert rc == 0, err
    # --no-embed-images leaves them alone.
    rc, raw3, err = send(["--html-file", os.path.join(d, "mail.html"), "--no-embed-images"])
    msg3 = harness.parse(raw3)
    assert rc == 0 and msg3.get_content_type() == "multipart/alternative"
    assert "src=\"logo.gif\"" in msg3.get_body(("html",)).get_content()


@harness.test(timeout=60)
def missing_image_is_66_naming_it():
    d = image_dir()
    os.remove(os.path.join(d, "img", "bg.gif"))
    rc, out, err = send(["--html-file", os.path.join(d, "mail.html")])
    assert rc == 66, (rc, err)
    line = mailcheck.one_line(err)
    assert "img/bg.gif" in line and "No such file" in line, line
    assert out == b""


@harness.test(timeout=60)
def options():
    d = image_dir()
    src = os.path.join(d, "mail.html")
    css = os.path.join(d, "extra.css")
    with open(css, "w") as f:
        f.write("p { font-size: 15px } b { color: red }")
    rc, raw, err = send(["--html-file", src, "--css", css, "--text", "Custom text"])
    msg = harness.parse(raw)
    html = msg.get_body(("html",)).get_content()
    assert "font-size: 15px" in html and "<b style=\"color: red;\">" in html
    assert msg.get_body(("plain",)).get_content().strip() == "Custom text"
    rc, raw, err = send(["--html-file", src, "--no-inline-css", "--no-text"])
    msg = harness.parse(raw)
    assert rc == 0 and msg.get_body(("plain",)) is None
    assert "<style>.hero" in msg.get_body(("html",)).get_content()
    rc, out, err = send(["--html-file", src, "--css", os.path.join(d, "nope.css")])
    assert rc == 66 and "nope.css" in mailcheck.one_line(err)
    rc, out, err = send(["--html-file", src, "--markdown-file", src])
    assert rc == 64, err


@harness.test(timeout=60)
def markdown_message():
    md = ("# Order shipped\n\nHello **Ann**,\n\n| Item | Qty |\n|------|-----|\n| Tea | 2 |\n\n"
          "~~Old price~~ and https://example.com/orders/42\n\n- one\n- two\n")
    rc, raw, err = harness.pigeon(
        "send", "--dry-run", "--from", "shop@example.com", "--to", "ann@example.org",
        "--subject", "Shipped", "--markdown-file", "-", input=md.encode())
    raw, msg = mailcheck.expect_ok(rc, raw, err)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == md
    html = msg.get_body(("html",)).get_content()
    assert "<table style=" in html and "<del" in html
    assert "<a href=\"https://example.com/orders/42\"" in html
    assert "<h1 style=\"" in html and "<style" not in html


def spamassassin(raw):
    sa = shutil.which("spamassassin")
    if sa is None:
        raise harness.Skip("spamassassin not installed")
    d = harness.tmpdir("pigeon-sa-")
    rc, out, err = harness.run_cmd([sa, "-L", "-t"], input=raw,
                                   timeout=180, env={"HOME": d})
    m = re.search(rb"X-Spam-Status: .*?tests=(.*?)(?:autolearn|version)", out, re.S)
    assert m, out[:2000] + err[-2000:]
    return set(re.split(r"[,\s]+", m.group(1).decode().strip())) - {""}


@harness.test(timeout=600)
def spamassassin_form_rules():
    d = corpus()
    fired_all = {}
    msgs = [["--html-file", os.path.join(d, "src", "inky-order.html")],
            ["--html-file", os.path.join(d, "src", "mjml-basic.html")],
            ["--html-file", os.path.join(image_dir(), "mail.html")]]
    for args in msgs:
        rc, raw, err = send(args)
        assert rc == 0, err
        fired = spamassassin(raw)
        bad = fired & set(FORM_RULES)
        fired_all[args[1]] = sorted(fired)
        assert not bad, "%s fired %s (all: %s)" % (args[1], bad, fired)


@harness.test(timeout=600)
def pathological_documents():
    # 50 MB in an optimized build; a sanitized build (make check) does 5 MB, the bench 50.
    cache = open(os.path.join(harness.build_dir(), "CMakeCache.txt")).read()
    mb = "5" if "PIGEON_SANITIZE:BOOL=ON" in cache else "50"
    rc, out, err = tool("--gen-big", mb, "--text-out", os.devnull, timeout=500)
    assert rc == 0 and len(out) > int(mb) * 1024 * 1024, err
    assert out.count(b"style=\"color: red;\"") > 1000
    rc, out, err = tool("--gen-nested", "10000")
    assert rc == 0 and b"<span class=\"x\" style=\"color: blue;\">deep</span>" in out, err[-500:]
    rc, out, err = tool("--gen-selectors", "2000", timeout=300)
    assert rc == 0 and b"<p class=\"c7\" style=\"color: red;\"><span style=\"margin: 7px;\">" \
        in out, out[-500:]


if __name__ == "__main__":
    harness.run()
