#!/usr/bin/python3
"""SpamAssassin (Debian's, offline: -L -t) on messages `pigeon send --html-file` composes
from the corpus: none of the rules about the message's own form may fire (FORM_RULES:
missing or HTML-only text, image-only, bad MIME, missing Date or Message-ID...). Rules
about the words (the corpus is placeholder copy) are not the composer's business.
"""
import os
import re
import shutil

import harness
from htmlmail import corpus, image_dir, send

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



if __name__ == "__main__":
    harness.run(file_timeout=290)
