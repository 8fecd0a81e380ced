"""Runs tests/integration/tool_smtp (the SMTP library driven from argv) for the
test_smtp_*.py files and parses its JSON result.

    r = smtptool.run(port, "--tls", "none", to=["b@example.test"], raw=b"...")
    r.json["messages"][0]["status"], r.transcript (masked, from stderr)
"""

import json
import os

import harness

FROM = "alice@example.test"


class Result:
    def __init__(self, rc, out, err):
        self.rc = rc
        self.stdout = out
        self.transcript = err.decode("utf-8", "replace")
        try:
            self.json = json.loads(out.decode("utf-8", "replace"))
        except ValueError as e:
            raise AssertionError("tool_smtp printed no JSON (%s): %r\n%s"
                                 % (e, out[:500], self.transcript[-3000:]))

    @property
    def connect(self):
        return self.json["connect"]

    @property
    def messages(self):
        return self.json.get("messages", [])

    @property
    def first(self):
        """The first message's result, or the connect result if none was sent."""
        return self.messages[0] if self.messages else self.connect

    def __repr__(self):
        return "tool_smtp: %s\n--- transcript ---\n%s" % (
            json.dumps(self.json, indent=1)[:4000], self.transcript[-4000:])


def run(port, *args, to=("bob@example.test",), sender=FROM, raw=None, password=None,
        token=None, timeout=60, host="127.0.0.1"):
    """Run tool_smtp against host:port with extra args; raw: message bytes (sent as is)."""
    tool = harness.build_tool("smtp")
    argv = [tool, "--host", host, "--port", str(port), "--from", sender]
    for t in to:
        argv += ["--to", t]
    if raw is not None:
        path = os.path.join(harness.tmpdir("smtp-msg-"), "msg.eml")
        with open(path, "wb") as f:
            f.write(raw)
        argv += ["--raw", path]
    argv += list(args)
    env = {"TOOL_PASSWORD": password, "TOOL_TOKEN": token}
    rc, out, err = harness.run_cmd(argv, env=env, timeout=timeout)
    assert rc == 0, "tool_smtp exited %d: %s" % (rc, err.decode("utf-8", "replace")[-2000:])
    assert b"AddressSanitizer" not in err and b"runtime error" not in err, err[-3000:]
    return Result(rc, out, err)
