"""`pigeon lint` and `pigeon send --lint` (issue 9): findings with reasons and fixes, exit
0 (clean) / 1 (warnings) / 2 (errors), --json, and --spamassassin whose score and rule
names must be what SpamAssassin itself (`spamassassin -L -t`, the Debian package) says.
"""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402

NOCONF = {"PIGEON_CONFIG": "/dev/null"}

SPAMMY = (b"From: Shop <deals@shop.example>\n"
          b"To: you@example.net\n"
          b"Subject: FREE MONEY FOR YOU TODAY!!!\n"
          b"Precedence: bulk\n"
          b"MIME-Version: 1.0\n"
          b"Content-Type: text/html; charset=us-ascii\n"
          b"\n"
          b"<html><body><a href=\"http://login.evil.example/\">www.paypal.com</a>"
          b"<a href=\"https://bit.ly/x\">here</a>"
          b"<img src=\"http://img.example/banner.png\"></body></html>\n")


def write(data, name="m.eml"):
    path = os.path.join(harness.tmpdir("pigeon-lint-"), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def composed(*extra):
    rc, out, err = harness.pigeon(
        "send", "--dry-run", "--from", "Joe <joe@example.com>", "--to", "ann@example.net",
        "--subject", "Minutes of Tuesday's meeting", "--text",
        "Hi Ann,\n\nthe minutes are below.\n", *extra, env=NOCONF)
    assert rc == 0, err
    return out


@test
def a_composed_message_is_clean():
    path = write(composed())
    rc, out, err = harness.pigeon("lint", path)
    assert rc == 0, (rc, out, err)
    assert b"clean" in out
    rc, out, err = harness.pigeon("lint", "-", input=composed())
    assert rc == 0, (rc, out)


@test
def send_lint_checks_instead_of_sending():
    rc, out, err = harness.pigeon(
        "send", "--lint", "--from", "joe@example.com", "--to", "ann@example.net",
        "--subject", "URGENT ACTION REQUIRED NOW", "--text", "x", env=NOCONF)
    assert rc == 1, (rc, out, err)
    assert b"subject_caps" in out and b"fix:" in out


@test
def findings_have_reasons_fixes_and_exit_2():
    path = write(SPAMMY)
    rc, out, err = harness.pigeon("lint", path)
    assert rc == 2, (rc, out, err)
    text = out.decode()
    for code in ("no_date", "no_message_id", "subject_caps", "subject_exclamation",
                 "no_unsubscribe", "no_text_part", "link_mismatch", "url_shortener",
                 "image_insecure"):
        assert re.search(r"^(warning|error): %s: .+\n  fix: .+$" % code, text, re.M), (code, text)
    rc, out, err = harness.pigeon("lint", "--json", path)
    assert rc == 2
    doc = json.loads(out)
    assert doc["result"] == "errors"
    sev = {f["code"]: f["severity"] for f in doc["findings"]}
    assert sev["link_mismatch"] == "error" and sev["url_shortener"] == "warning", sev


@test
def bulk_flag_and_dkim_alignment():
    path = write(composed())
    rc, out, _ = harness.pigeon("lint", "--bulk", path)
    assert rc == 2 and b"no_unsubscribe" in out, out
    rc, out, _ = harness.pigeon("lint", "--dkim-domain", "elsewhere.example", path)
    assert rc == 2 and b"dkim_not_aligned" in out, out
    rc, out, _ = harness.pigeon("lint", "--dkim-domain", "example.com", path)
    assert rc == 0, out


@test
def usage_and_missing_file():
    rc, _, err = harness.pigeon("lint")
    assert rc == 64, err
    rc, _, err = harness.pigeon("lint", "/nonexistent/m.eml")
    assert rc == 66, err


@test(timeout=120)
def spamassassin_score_and_rules_are_its_own():
    if shutil.which("spamassassin") is None:
        raise harness.Skip("spamassassin is not installed")
    path = write(SPAMMY)
    home = harness.tmpdir("pigeon-sa-home-")
    env = {"HOME": home}
    rc, out, err = harness.pigeon("lint", "--spamassassin", "--json", path, env=env, timeout=90)
    assert rc == 2, (rc, err)
    sa = json.loads(out)["spamassassin"]
    with open(path, "rb") as f:
        rc, direct, _ = harness.run_cmd(["spamassassin", "-L", "-t"], input=f.read(), env=env,
                                        timeout=90)
    status = re.search(rb"X-Spam-Status: .*?(?=\n\S)", direct, re.S).group(0).decode()
    status = re.sub(r"\s+", " ", status)
    score = float(re.search(r"score=(-?[\d.]+)", status).group(1))
    rules = re.search(r"tests=((?:[A-Z0-9_]+, ?)*[A-Z0-9_]*)", status).group(1)
    rules = [r.strip() for r in rules.split(",")]
    assert abs(sa["score"] - score) < 0.05, (sa, status)
    assert sorted(sa["rules"]) == sorted(r for r in rules if r), (sa, status)
    assert "SUBJ_ALL_CAPS" in sa["rules"], sa


if __name__ == "__main__":
    harness.run(timeout=60, file_timeout=280)
