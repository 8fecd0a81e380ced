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
- Errors: a missing image is exit 66 naming it; pathological input never crashes.
"""
import json
import os

import harness
import htmlcompare
import mailcheck
from htmlmail import corpus, image_dir, names, node, parts, send, tool

# Differences from juice that are juice's bugs, with the browser as referee:
# - width="auto" / height="auto": juice copies CSS `auto` into the attribute, overwriting
#   the author's width="170". HTML (2.3.4.4) allows only a non-negative integer (or a
#   percentage for tables); browsers ignore "auto", so the image falls back to its
#   intrinsic size and Outlook, which reads only the attribute, loses the author's size.
#   pigeon copies px and (on table elements) % values only, and leaves the attribute alone.
JUICE_BUGS = [
    lambda d: d["kind"] == "attr" and d["prop"] in ("width", "height") and d["juice"] == "auto",
]

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
