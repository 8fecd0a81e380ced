"""Shared by the HTML mail tests: the npm peers, the corpus (html_peers.js), the
pigeon calls and a folder of images."""
import os

import harness

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


def send(args, cwd=None):
    return harness.pigeon("send", "--dry-run", "--from", "Shop <shop@example.com>",
                          "--to", "ann@example.org", "--subject", "Your order", *args, cwd=cwd)


def parts(msg):
    return [(p.get_content_type(), p) for p in msg.walk()]


# Real mails carry text as well as pictures (SpamAssassin's HTML_IMAGE_ONLY_* rules count
# the characters beside images).
PARAGRAPH = ("Your parcel left our warehouse this morning and is now with the carrier. "
             "Deliveries usually arrive within two to three working days; the tracking "
             "link below shows where it is at any time. If nobody is home, the driver "
             "leaves a card with instructions for picking it up at the nearest depot or "
             "booking a new delivery day. Everything in this order is covered by our "
             "thirty-day return policy: if something is not right, reply to this message "
             "and tell us what happened, and we will send a prepaid label the same day. "
             "Thank you for shopping with us, and we hope to see you again soon. ") * 5


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
                "has shipped.</p><p>" + PARAGRAPH + "</p><img src=\"logo.gif\" alt=\"\">"
                "<img src=\"data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAAB"
                "AAEAAAICRAEAOw==\" alt=\"dot\"><img src=\"https://cdn.example.com/x.png\">"
                "<p><a href=\"https://example.com/track/42\">Track it</a></p></div>"
                "</body></html>")
    return d
