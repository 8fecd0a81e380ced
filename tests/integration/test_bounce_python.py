"""`pigeon bounces parse` (issue 13) against Python's email package, an independent MIME
parser: for every message of tests/corpus/bounce/ the recipients, actions, statuses,
diagnostics and MTAs we extract from message/delivery-status parts (RFC 3464) are those
Python parses from the same parts; the ARF fields (RFC 5965) and the original's Message-ID
agree too; an mbox and a maildir written by Python's mailbox module are read message by
message; standard input works; a missing input is exit 66.
"""
import email
import functools
import email.policy
import glob
import json
import mailbox
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402

CORPUS = os.path.join(harness.source_dir(), "tests", "corpus", "bounce")
NOCONF = {"PIGEON_CONFIG": "/dev/null"}


def corpus():
    files = sorted(glob.glob(os.path.join(CORPUS, "*.eml")))
    assert len(files) >= 25, files
    return files


@functools.lru_cache(maxsize=None)
def ours(path):
    rc, out, err = harness.pigeon("bounces", "parse", "--json", path, env=NOCONF)
    assert rc == 0, (path, rc, err)
    return [json.loads(line) for line in out.decode().splitlines()]


def untyped(v):
    """RFC 3464 2.1.2: "type; value" -> value."""
    v = re.sub(r"\s+", " ", str(v)).strip()
    m = re.match(r"^[A-Za-z0-9.-]+\s*;\s*(.*)$", v)
    return m.group(1) if m else v


def addr(v):
    v = untyped(v)
    m = re.search(r"<([^<>]+@[^<>]+)>", v)
    return m.group(1) if m else v


def python_dsn(path):
    """Per recipient: what Python's email package reads from the delivery-status parts."""
    with open(path, "rb") as f:
        msg = email.message_from_bytes(f.read())
    rcpts, mta = [], None
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        if part.get("Content-Transfer-Encoding", "7bit").lower() not in ("7bit", "8bit"):
            return None  # Python does not decode a transfer-encoded report: not comparable
        blocks = part.get_payload()
        for i, block in enumerate(blocks):
            if i == 0 and block.get("Final-Recipient") is None:
                if block.get("Reporting-MTA"):
                    mta = untyped(block["Reporting-MTA"])
                continue
            if block.get("Final-Recipient") is None and block.get("Original-Recipient") is None:
                continue
            rcpts.append({
                "rcpt": addr(block.get("Final-Recipient") or block.get("Original-Recipient")),
                "action": (block.get("Action") or "").strip().lower() or None,
                "status": (block.get("Status") or "").split()[0] if block.get("Status") else None,
                "diagnostic": untyped(block["Diagnostic-Code"]) if block.get("Diagnostic-Code") else None,
                "remote_mta": untyped(block["Remote-MTA"]) if block.get("Remote-MTA") else None,
            })
    return mta, rcpts


@test
def dsn_fields_match_python():
    compared = 0
    for path in corpus():
        py = python_dsn(path)
        if py is None:
            continue
        mta, rcpts = py
        if not rcpts:
            continue
        rows = ours(path)
        name = os.path.basename(path)
        assert len(rows) == len(rcpts), (name, rows, rcpts)
        for row, want in zip(rows, rcpts):
            for key in ("rcpt", "action", "remote_mta", "diagnostic"):
                assert row[key] == want[key], (name, key, row[key], want[key])
            # A generic X.0.0 may be refined from the reply text; otherwise equal.
            if want["status"] and not want["status"].endswith(".0.0"):
                assert row["status"] == want["status"], (name, row["status"], want["status"])
            assert row["reporting_mta"] == mta, (name, row["reporting_mta"], mta)
            assert row["kind"] == "bounce", (name, row)
        compared += 1
    assert compared >= 12, compared


@test
def arf_and_original_match_python():
    arf = 0
    for path in corpus():
        with open(path, "rb") as f:
            msg = email.message_from_bytes(f.read())
        rows = ours(path)
        name = os.path.basename(path)
        for part in msg.walk():
            ct = part.get_content_type()
            if ct == "message/feedback-report":
                fields = part.get_payload()[0]  # Python reads it as an embedded header block
                assert rows[0]["kind"] == "complaint", (name, rows)
                assert rows[0]["feedback_type"] == fields["Feedback-Type"].strip().lower()
                assert rows[0]["orig_envelope_from"] == addr(fields["Original-Mail-From"])
                want = [addr(v) for v in fields.get_all("Original-Rcpt-To") or []]
                if want:
                    assert [r["rcpt"] for r in rows] == want, (name, rows, want)
                arf += 1
            elif ct in ("message/rfc822", "text/rfc822-headers"):
                if ct == "message/rfc822":
                    orig = part.get_payload()[0]
                else:
                    orig = email.message_from_string(part.get_payload())
                mid = orig.get("Message-ID")
                if mid and re.fullmatch(r"\s*<[^<>]+>\s*", mid):
                    assert rows[0]["orig_message_id"] == mid.strip()[1:-1], (name, rows[0], mid)
    assert arf == 2, arf


@test
def mbox_and_maildir_read_message_by_message():
    files = corpus()
    tmp = harness.tmpdir("pigeon-bounces-")
    box = mailbox.mbox(os.path.join(tmp, "bounces.mbox"))
    md = mailbox.Maildir(os.path.join(tmp, "Maildir"))
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        box.add(data)
        md.add(data)
    box.flush()
    box.close()
    single = {}
    for path in files:
        single[os.path.basename(path)] = ours(path)
    want = sorted((r["kind"], r["class"], r["rcpt"] or "-") for rows in single.values() for r in rows)
    for target in (os.path.join(tmp, "bounces.mbox"), os.path.join(tmp, "Maildir")):
        rows = ours(target)
        got = sorted((r["kind"], r["class"], r["rcpt"] or "-") for r in rows)
        assert got == want, (target, set(got) ^ set(want))
        assert len({r["source"] for r in rows}) == len(files), target


def verp_tag(key, payload, domain):
    """The documented token tag (pigeon/bounce.h), computed here independently."""
    import base64
    import hashlib
    import hmac
    msg = b"pigeon-verp1\0" + payload.lower().encode() + b"\0" + domain.lower().encode()
    mac = hmac.new(key, msg, hashlib.sha256).digest()
    return base64.b32encode(mac).decode().lower()[:10]


@test
def verp_tokens_checked_with_the_key():
    tmp = harness.tmpdir("pigeon-verp-")
    key = b"pigeon-integration-verp-key-42"
    keyfile = os.path.join(tmp, "verp.key")
    with open(keyfile, "wb") as f:
        f.write(key + b"\n")
    os.chmod(keyfile, 0o600)
    with open(os.path.join(CORPUS, "postfix_user_unknown.eml"), "rb") as f:
        bounce = f.read()
    good = "bounces+ann=example.net-%s@news.example.com" % verp_tag(key, "ann=example.net",
                                                                  "news.example.com")
    forged = "bounces+ceo=example.net-%s@news.example.com" % verp_tag(key, "ann=example.net",
                                                                    "news.example.com")
    for to, state, rcpt in ((good, "valid", "ann@example.net"), (forged, "forged", None),
                            (good.upper().replace("@NEWS.EXAMPLE.COM", "@news.example.com"),
                             "valid", "ANN@example.net")):
        msg = bounce.replace(b"To: news@news.example.com", ("To: " + to).encode(), 1)
        rc, out, err = harness.pigeon("bounces", "parse", "--json", "--verp-key-file", keyfile,
                                      "-", input=msg, env=NOCONF)
        assert rc == 0, err
        row = json.loads(out.decode().splitlines()[0])
        assert row["verp_state"] == state and row["verp_rcpt"] == rcpt, (to, row)
    rc, out, err = harness.pigeon("bounces", "parse", "--verp-key-file", "/nonexistent/key", "-",
                                  input=bounce, env=NOCONF)
    assert rc == 66, (rc, err)


@test
def stdin_table_and_errors():
    path = os.path.join(CORPUS, "qmail.eml")
    with open(path, "rb") as f:
        data = f.read()
    rc, out, err = harness.pigeon("bounces", "parse", "-", input=data, env=NOCONF)
    assert rc == 0, err
    lines = out.decode().splitlines()
    assert lines[0].split()[:4] == ["SOURCE", "KIND", "CLASS", "STATUS"], lines
    assert any("mike@example.com" in l and " hard " in l and "5.1.1" in l for l in lines), lines
    assert any("nina@example.com" in l and " block " in l for l in lines), lines
    rc, out, err = harness.pigeon("bounces", "parse", "/nonexistent/x.eml", env=NOCONF)
    assert rc == 66, (rc, err)
    rc, out, err = harness.pigeon("bounces", "nosuch", env=NOCONF)
    assert rc == 64, (rc, err)
    rc, out, err = harness.pigeon("bounces", "parse", env=NOCONF)
    assert rc == 64, (rc, err)


if __name__ == "__main__":
    harness.run(timeout=60, file_timeout=240)
