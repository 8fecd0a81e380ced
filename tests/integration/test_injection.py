"""Header and MIME injection through every input of `pigeon send --dry-run`.

An injection corpus (CR, LF, CRLF, "\\r\\nBcc: x", encoded-words that decode to CRLF,
folding tricks, NEL, U+2028, boundary-like lines, "--", a display name that looks like
an address...) is put into every input: From, To, Cc, Bcc, Reply-To (in a quoted display
name, a bare display name, and after the address), Subject, a header name, a header
value, an attachment's name= and type=, the attachment's file name on disk, an inline
part's file name (its Content-ID), the text body and the HTML body.

Each run must end one of two ways:
- refused: exit 65, nothing on stdout, exactly one line on stderr; or
- accepted: exit 0, the message passes mailcheck.check_wire, its header field names
  (top level, in order) are those of the same message without the payload, it has as
  many MIME parts, its To/Cc recipients are the intended ones, and the field that
  carried the payload reads back (Python, policy.default) as exactly what was given.
message.h promises that CR, LF (and NUL) in any header value, name, address, filename
or parameter are refused; for those fields a payload holding CR or LF must be refused.

NUL cannot be passed in argv (execve strings end at NUL) nor in a file name, so it is
tried only where a file carries it: the bodies. Bcc recipients are envelope-only and
the dry run shows no envelope, so for --bcc the check is that nothing leaks into the
message.

Cost: some 770 runs of `pigeon`, and under the ASan test build nearly all of the time is
the process's: start-up (~55 ms of CPU, most of it page faults as the loader relocates
the sanitizers' 6 MB of metadata about globals) and LeakSanitizer's scan at exit (~40 ms,
most of it that metadata and the runtimes' .bss), against well under a second of
Python's parsing for the whole file. No two runs are the same case. So the runs of a
sweep go to a small pool of workers (their checks are still made one after another, in
order), and LeakSanitizer looks at the exit of the sweep's baseline, of every
LEAK_STRIDE-th run, rotating with each sweep so that every payload is leak-checked in a
third of the inputs, and of at least one run of each way the sweep ended (refused,
accepted): see run_cases. Every run keeps ASan's and UBSan's other checks.
"""

import concurrent.futures
import functools
import itertools
import os
import re

import harness
from harness import test
from mailcheck import (crlf, display_names, dry_run, expect_ok, expect_refused, header_names,
                       leaves, split_entity, walk_raw)

EVIL = "evil@attacker.example"
PAYLOADS = [
    "\r", "\n", "\r\n", "\r\nBcc: " + EVIL, "\nBcc: " + EVIL, "\rBcc: " + EVIL,
    "\r\n Bcc: " + EVIL, "\r\n\tfolded", "\r\n\r\nbody injection", "\n\nX-Injected: 1",
    "=?UTF-8?Q?=0D=0A?=Bcc: " + EVIL, "=?UTF-8?B?DQpCY2M6IHg=?=",
    "=?UTF-8?Q?a=0D=0ABcc:_" + EVIL + "?=", "=?ISO-8859-1?B?AA==?=", "=?UTF-8?B?AA==?=",
    "\x85Bcc: " + EVIL, "\u2028Bcc: " + EVIL, "\u2029", "\x0b\x0c", "\x1b[2J",
    "\u200b\ufeff\u202e", "--=_pigeon_", "\r\n--=_pigeon_x--\r\n", "\n--\n", "--",
    '"a@b.c" <' + EVIL + '>', "a@b.c", "; filename=evil.exe", '"; name="evil.exe',
    "\\", "\t",
]
NUL_PAYLOADS = ["\x00", "a\x00\r\nBcc: " + EVIL]
BREAKS = re.compile(r"[\r\n]")

TO = "to@example.org"
BASE = ["--from", "Alice <alice@example.com>", "--to", TO, "--subject", "s"]


# Workers: the runs are CPU-bound processes, so about one per core; ctest's -j runs other
# files beside this one.
WORKERS = max(2, min(4, len(os.sched_getaffinity(0))))
POOL = concurrent.futures.ThreadPoolExecutor(WORKERS)
LEAK_STRIDE = 3
SWEEPS = itertools.count()    # numbers the sweeps, to rotate the leak-checked runs
# LeakSanitizer off (the last of a flag given twice wins): only where the caller says so.
NO_LEAK_CHECK = {"ASAN_OPTIONS": ":".join(
    o for o in (os.environ.get("ASAN_OPTIONS"), "detect_leaks=0") if o)}


def start(args, leak_checked):
    """Starts `pigeon send --dry-run ARGS` on the pool; a future of (rc, stdout, stderr).
    leak_checked: whether LeakSanitizer (where the build has it) looks at its exit."""
    return POOL.submit(dry_run, *args, env=None if leak_checked else NO_LEAK_CHECK)


def judge(result, accept_check, refuse_on_break, payload, hidden):
    """Judges one injection attempt; see the module docstring for what must hold.
    hidden: addresses that must not appear in the message (Bcc)."""
    rc, out, err = result
    if rc != 0:
        assert rc == 65, "payload %r: exit %d: %r" % (payload, rc, err)
        expect_refused(rc, out, err, 65)
        return "refused"
    assert not (refuse_on_break and BREAKS.search(payload)), \
        "payload %r with CR/LF was accepted in a header field" % payload
    raw, msg = expect_ok(rc, out, err, bcc=hidden)
    accept_check(raw, msg)
    return "accepted"


def shape(result):
    """What the payload must not change: the top-level field names, the number of parts."""
    raw, msg = expect_ok(*result)
    return header_names(split_entity(raw)[0]), len(leaves(msg))


def run_cases(base_args, cases, refuse_on_break, hidden=()):
    """Runs the baseline and each (payload, args, accept(base, raw, msg)) concurrently;
    judges them in order; returns {payload: "refused" | "accepted"}.

    leak_checked(i) picks the runs LeakSanitizer looks at; an outcome that none of them
    had is run once more with it, so both ways a sweep can end are leak-checked."""
    sweep_no = next(SWEEPS)

    def leak_checked(i):
        return (i + sweep_no) % LEAK_STRIDE == 0

    base_run = start(base_args, True)
    runs = [start(args, leak_checked(i)) for i, (_, args, _) in enumerate(cases)]
    base = shape(base_run.result())
    outcomes, leak_seen = {}, set()
    for i, ((p, args, accept), run) in enumerate(zip(cases, runs)):
        how = judge(run.result(), functools.partial(accept, base), refuse_on_break, p, hidden)
        outcomes[p] = how
        if leak_checked(i):
            leak_seen.add(how)
    for how in sorted(set(outcomes.values()) - leak_seen):
        p, args, accept = next(c for c in cases if outcomes[c[0]] == how)
        again = judge(start(args, True).result(), functools.partial(accept, base),
                      refuse_on_break, p, hidden)
        assert again == how, "payload %r: %s, then %s" % (p, how, again)
    assert len(outcomes) == len(cases)
    return outcomes


def same_shape(base, raw, msg, rename=None):
    names, nparts = base
    if rename is not None:
        names = [rename[1] if n == rename[0] else n for n in names]
    got = header_names(split_entity(raw)[0])
    assert got == names, "header fields %r, expected %r" % (got, names)
    assert len(leaves(msg)) == nparts, "%d parts, expected %d" % (len(leaves(msg)), nparts)
    assert not msg.get_all("Bcc") and not msg.get_all("X-Injected")


def addrs(msg, field):
    h = msg[field]
    return [a.addr_spec for a in h.addresses] if h is not None else []


def sweep(make_args, check, refuse_on_break, payloads=PAYLOADS, hidden=()):
    """Runs every payload through make_args(payload) -> args; returns the outcomes."""
    def accept(p):
        def accept_p(base, raw, msg):
            same_shape(base, raw, msg)
            check(p, raw, msg)
        return accept_p
    base_args = make_args("x")
    return run_cases(base_args, [(p, make_args(p), accept(p)) for p in payloads],
                     refuse_on_break, hidden)


def spaces(name):
    """address.c collapses runs of spaces in display names and trims the ends."""
    return re.sub(" +", " ", name).strip(" ")


# ---- addresses ----

def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def address_sweeps(option, field):
    """Payload in a quoted display name, a bare display name, after the address."""
    target = "zs@example.cn"

    def args_for(value):
        if option == "--from":
            return ["--from", value, "--to", TO, "--subject", "s"]
        if option == "--to":
            return ["--from", "alice@example.com", "--to", value, "--subject", "s"]
        return BASE + [option, value]

    hidden = (target,) if field is None else ()

    def check_quoted(p, raw, msg):
        if field:
            got = addrs(msg, field)
            assert got == [target], "%s mailboxes %r" % (field, got)
            want = spaces("Zhang" + p + "San")
            names = display_names(raw, msg, field, [want])
            assert names == [want], "display name %r" % names
        if field != "To":
            assert addrs(msg, "To") == [TO]

    def check_addr_only(p, raw, msg):
        if field:
            assert addrs(msg, field) == [target], "%s: %r" % (field, addrs(msg, field))
        if field != "To":
            assert addrs(msg, "To") == [TO]

    sweep(lambda p: args_for(quote("Zhang" + p + "San") + " <" + target + ">"),
          check_quoted, True, hidden=hidden)
    sweep(lambda p: args_for("Zhang" + p + "San <" + target + ">"), check_addr_only, True,
          hidden=hidden)
    # A comma after the address legitimately starts another mailbox of the list; those
    # payloads are not injections here.
    sweep(lambda p: args_for(target + p), check_addr_only, True,
          [p for p in PAYLOADS if "," not in p], hidden=hidden)


@test
def from_field():
    address_sweeps("--from", "From")


@test
def to_field():
    address_sweeps("--to", "To")


@test
def cc_field():
    address_sweeps("--cc", "Cc")


@test
def bcc_field():
    address_sweeps("--bcc", None)


@test
def reply_to_field():
    address_sweeps("--reply-to", "Reply-To")


# ---- other header fields ----

@test
def subject():
    def check(p, raw, msg):
        assert msg["Subject"] == "Hi" + p + "there", "Subject %r" % msg["Subject"]
    sweep(lambda p: ["--from", "a@example.com", "--to", TO, "--subject", "Hi" + p + "there"],
          check, True)


@test
def header_value():
    def check(p, raw, msg):
        got = [str(v) for v in msg.get_all("X-Test", [])]
        assert got == ["v" + p + "w"], "X-Test %r" % got
    sweep(lambda p: BASE + ["--header", "X-Test: v" + p + "w"], check, True)


def header_split(p):
    """What --header "X-T<p>t: v" means: name up to the first colon, value after it."""
    name, value = ("X-T" + p + "t: v").split(":", 1)
    return name, value.lstrip(" \t")


@test
def header_name():
    def check(p):
        name, value = header_split(p)

        def check_p(base, raw, msg):
            same_shape(base, raw, msg, rename=("x-tt", name.lower()))
            assert [str(v) for v in msg.get_all(name, [])] == [value]
        return check_p
    outcomes = run_cases(BASE + ["--header", "X-Tt: v"],
                         [(p, BASE + ["--header", "X-T" + p + "t: v"], check(p))
                          for p in PAYLOADS], True)
    # Only printable ASCII but ':' is a field name (RFC 5322 2.2); anything else refused.
    for p, how in outcomes.items():
        name = header_split(p)[0]
        ftext = all(33 <= ord(ch) <= 126 for ch in name)
        assert how == ("accepted" if ftext else "refused"), (p, how)


# ---- attachments and inline parts ----

def attachment_dir():
    d = harness.tmpdir("pigeon-inj-")
    path = os.path.join(d, "file.bin")
    with open(path, "wb") as f:
        f.write(b"\x00\x01payload\r\n")
    return d, path


def only_attachment(msg):
    atts = list(msg.iter_attachments())
    assert len(atts) == 1, "%d attachments" % len(atts)
    assert atts[0].get_payload(decode=True) == b"\x00\x01payload\r\n"
    return atts[0]


@test
def attach_name():
    d, path = attachment_dir()

    def check(p, raw, msg):
        name = only_attachment(msg).get_filename()
        assert name == "r" + p + ".pdf", "filename %r" % name
    sweep(lambda p: BASE + ["--text", "t", "--attach", path + ";name=r" + p + ".pdf"],
          check, True)


@test
def attach_type():
    d, path = attachment_dir()

    def check(p, raw, msg):
        ctype = only_attachment(msg).get_content_type()
        assert ctype == ("application/x-" + p).lower(), "type %r" % ctype
    sweep(lambda p: BASE + ["--text", "t", "--attach", path + ";type=application/x-" + p],
          check, True)


def disk_payloads():
    return [p for p in PAYLOADS if "/" not in p]    # '/' separates directories


@test
def attach_file_name():
    d = harness.tmpdir("pigeon-inj-")

    def make(p):
        path = os.path.join(d, "f" + p + ".dat")
        with open(path, "wb") as f:
            f.write(b"\x00\x01payload\r\n")
        return BASE + ["--text", "t", "--attach", path]

    def check(p, raw, msg):
        name = only_attachment(msg).get_filename()
        assert name == "f" + p + ".dat", "filename %r" % name
    sweep(make, check, True, disk_payloads())


@test
def inline_file_name():
    d = harness.tmpdir("pigeon-inj-")
    html = os.path.join(d, "body.html")
    with open(html, "w") as f:
        f.write('<img src="cid:logo.png">')

    def make(p):
        sub = os.path.join(d, "d%d" % len(os.listdir(d)))
        os.mkdir(sub)
        path = os.path.join(sub, "i" + p + ".png")
        with open(path, "wb") as f:
            f.write(b"\x89PNG")
        return BASE + ["--html-file", html, "--inline", path]

    def check(p, raw, msg):
        [part] = [q for q in leaves(msg) if q.get_content_type() == "image/png"]
        assert part.get_filename() == "i" + p + ".png"
        # The raw field, not Python's reading: policy.default treats Content-ID as
        # unstructured text and decodes "=?...?=" in it, but RFC 2047 5 forbids
        # encoded-words in a msg-id, so the HTML's cid: reference is the raw value.
        [cid] = [raw_field(hdr, "Content-ID") for hdr, _, parsed in walk_raw(raw)
                 if parsed.get_content_type() == "image/png"]
        assert cid == "<i" + p + ".png>", "Content-ID %r" % cid
    sweep(make, check, True, disk_payloads())


def raw_field(hdr, name):
    """The unfolded raw value of the one field called name in a header block."""
    found = [line.split(b":", 1)[1] for line in
             hdr.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t").split(b"\r\n")
             if line.lower().startswith(name.lower().encode() + b":")]
    assert len(found) == 1, "%d %s fields" % (len(found), name)
    return found[0].strip(b" ").decode("ascii")


# ---- bodies: always accepted, read back exactly ----

def body_sweep(option, subtype):
    d = harness.tmpdir("pigeon-inj-")

    def make(p):
        path = os.path.join(d, "body%d" % len(os.listdir(d)))
        with open(path, "wb") as f:
            f.write(("<p>" + p + "</p>" + p).encode())
        # HTML read back exactly: as written, not prepared (test_html_mail covers that).
        html_opts = ["--text", "t", "--no-inline-css", "--no-embed-images"]
        return BASE + html_opts * (option == "--html-file") + [option, path]

    def check(p, raw, msg):
        body = msg.get_body((subtype,))
        want = crlf("<p>" + p + "</p>" + p)
        assert body.get_content() == want, "body %r != %r" % (body.get_content()[:80], want)
    outcomes = sweep(make, check, False, PAYLOADS + NUL_PAYLOADS)
    refused = [p for p, how in outcomes.items() if how != "accepted"]
    assert not refused, "valid UTF-8 bodies refused: %r" % refused


@test
def text_body():
    body_sweep("--text-file", "plain")


@test
def html_body():
    body_sweep("--html-file", "html")


if __name__ == "__main__":
    # Each test runs 30 to 100 `pigeon send --dry-run`s, about 0.1 s of CPU each under the
    # ASan build, WORKERS at a time: seconds on a quiet machine, far more on a loaded one.
    harness.run(timeout=240)
