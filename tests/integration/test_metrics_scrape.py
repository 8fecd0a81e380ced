#!/usr/bin/python3
"""The metrics endpoint scraped over HTTP and read back by an independent parser.

tool_metrics (tests/integration/tool_metrics.c) serves the standard pigeon metric set on
127.0.0.1 port 0 and changes it on stdin commands. This test scrapes /metrics with urllib,
parses it with the Prometheus project's own Python parser (Debian's
python3-prometheus-client, prometheus_client.parser.text_string_to_metric_families) and
with a strict line grammar of the text format 0.0.4 written here, and checks that the
values are what was counted: counters, gauges, cumulative histogram buckets, label values
with quotes, backslashes, newlines and UTF-8. Also /healthz (200 and 503), 404, 405, HEAD,
scrapes racing updates, a busy port, IPv6, and docs/grafana-dashboard.json: valid JSON
whose PromQL expressions use only metric names (and labels) the standard set renders.
"""
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # scripts/deps.sh installs python3-prometheus-client
    text_string_to_metric_families = None

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STANDARD = {
    "pigeon_messages_total": "counter",
    "pigeon_recipients_total": "counter",
    "pigeon_smtp_errors_total": "counter",
    "pigeon_attempts_total": "counter",
    "pigeon_send_duration_seconds": "histogram",
    "pigeon_queue_depth": "gauge",
    "pigeon_queue_oldest_age_seconds": "gauge",
    "pigeon_smtp_connections_open": "gauge",
}
ERR_TIMEOUT = 15  # PIGEON_ERR_TIMEOUT in include/pigeon/error.h


class Tool:
    """A running tool_metrics and its command channel."""

    def __init__(self, listen=None):
        argv = [harness.build_tool("metrics")] + ([listen] if listen else [])
        self.proc = harness.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        first = self.proc.stdout.readline().decode().split()
        if not first or first[0] != "PORT":
            self.proc.wait(10)
            raise RuntimeError("tool_metrics failed to start: %r" % first)
        self.port = int(first[1])
        self.host = "[::1]" if listen and listen.startswith("[") else "127.0.0.1"

    def cmd(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().decode().strip()
        assert reply == "OK", "%s -> %r" % (line, reply)

    def url(self, path):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def get(self, path, method="GET", data=None):
        """(status, headers, body bytes) of one request; HTTP errors are returned too."""
        req = urllib.request.Request(self.url(path), method=method, data=data)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def scrape(self):
        status, headers, body = self.get("/metrics")
        assert status == 200, status
        assert headers["Content-Type"] == CONTENT_TYPE, headers["Content-Type"]
        text = body.decode("utf-8")
        check_grammar(text)
        return text

    def close(self):
        self.proc.stdin.write(b"quit\n")
        self.proc.stdin.flush()
        assert self.proc.wait(10) == 0
        harness.stop(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            harness.stop(self.proc)


# ---- an independent reading of the text format ----

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE_RE = re.compile(r"^(%s)(\{(?:%s)(?:,%s)*\})? (\S+)$" % (NAME, LABEL, LABEL))
VALUE_RE = re.compile(r"^(?:[+-]?Inf|NaN|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$")


def check_grammar(text):
    """Strict checks of format 0.0.4: every line HELP, TYPE or a sample; one TYPE per
    family, before its samples; samples of a family contiguous; valid values."""
    assert text.endswith("\n"), "no final newline"
    types = {}
    seen_families = []
    for line in text[:-1].split("\n"):
        m = re.match(r"^# (HELP|TYPE) (%s)(?: (.*))?$" % NAME, line)
        if m:
            if m.group(1) == "TYPE":
                assert m.group(2) not in types, "second TYPE for " + m.group(2)
                assert m.group(3) in ("counter", "gauge", "histogram"), line
                types[m.group(2)] = m.group(3)
            continue
        m = SAMPLE_RE.match(line)
        assert m, "not a sample line: %r" % line
        assert VALUE_RE.match(m.group(3)), "bad value: %r" % line
        name = m.group(1)
        family = next((f for f in types if name == f or (types[f] == "histogram" and name in (
            f + "_bucket", f + "_sum", f + "_count"))), None)
        assert family is not None, "sample before its TYPE: %r" % line
        if not seen_families or seen_families[-1] != family:
            assert family not in seen_families, "family %s not contiguous" % family
            seen_families.append(family)


def families(text):
    if text_string_to_metric_families is None:
        raise AssertionError("python3-prometheus-client is missing: run scripts/deps.sh")
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, family, sample_name, **labels):
    """The value of one sample; family is the parser's name (counters lose _total)."""
    found = [s.value for s in fams[family].samples
             if s.name == sample_name and s.labels == labels]
    assert len(found) == 1, "%s%r: %r" % (sample_name, labels, fams[family].samples)
    return found[0]


def histogram(fams, name):
    """(buckets [(le, cumulative)], sum, count) of an unlabelled histogram."""
    samples = fams[name].samples
    buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name == name + "_bucket"]
    total = [s.value for s in samples if s.name == name + "_sum"]
    count = [s.value for s in samples if s.name == name + "_count"]
    assert len(total) == 1 and len(count) == 1
    return buckets, total[0], count[0]


# ---- tests ----

@test
def initial_scrape_has_standard_set():
    with Tool() as t:
        text = t.scrape()
        fams = families(text)
        for name, kind in STANDARD.items():
            key = name[:-len("_total")] if kind == "counter" else name
            assert key in fams, "missing %s" % name
            assert fams[key].type == kind, (name, fams[key].type)
            assert "# TYPE %s %s\n" % (name, kind) in text
            assert fams[key].documentation, "no HELP for " + name
        for result in ("sent", "partial", "deferred", "failed"):
            assert value(fams, "pigeon_messages", "pigeon_messages_total", result=result) == 0
        for state in ("queued", "inflight", "deferred", "delivered", "failed"):
            assert value(fams, "pigeon_queue_depth", "pigeon_queue_depth", state=state) == 0
        assert value(fams, "pigeon_attempts", "pigeon_attempts_total") == 0
        buckets, total, count = histogram(fams, "pigeon_send_duration_seconds")
        assert [le for le, _ in buckets] == [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
                                             float("inf")]
        assert all(v == 0 for _, v in buckets) and total == 0 and count == 0


@test
def counted_values_read_back():
    durations = [0.01, 0.05, 0.3, 0.3, 2, 45, 200]
    with Tool() as t:
        for result, n in (("sent", 3), ("failed", 1), ("partial", 2)):
            for _ in range(n):
                t.cmd("message " + result)
        t.cmd("rcpts sent 5")
        t.cmd("rcpts deferred 2")
        for code, err in ((550, 13), (550, 13), (421, 14), (0, ERR_TIMEOUT), (999, 12)):
            t.cmd("error %d %d" % (code, err))
        for d in durations:
            t.cmd("attempt %r" % d)
        t.cmd("depth queued 4")
        t.cmd("depth deferred 2")
        t.cmd("depth queued 3")
        t.cmd("conn 3")
        t.cmd("conn -1")
        fams = families(t.scrape())

        def messages(result):
            return value(fams, "pigeon_messages", "pigeon_messages_total", result=result)
        assert (messages("sent"), messages("failed"), messages("partial"),
                messages("deferred")) == (3, 1, 2, 0)
        rcpts = {s.labels["result"]: s.value for s in fams["pigeon_recipients"].samples}
        assert rcpts == {"sent": 5, "deferred": 2, "failed": 0}, rcpts
        errors = {(s.labels["class"], s.labels["code"]): s.value
                  for s in fams["pigeon_smtp_errors"].samples}
        assert errors == {("5xx", "550"): 2, ("4xx", "421"): 1, ("timeout", "none"): 1,
                          ("other", "none"): 1}, errors
        assert value(fams, "pigeon_attempts", "pigeon_attempts_total") == len(durations)
        buckets, total, count = histogram(fams, "pigeon_send_duration_seconds")
        assert count == len(durations)
        assert abs(total - sum(durations)) < 1e-9, total
        # Cumulative: each bucket counts observations <= le, never decreasing, +Inf = count.
        for le, v in buckets:
            assert v == sum(1 for d in durations if d <= le), (le, v)
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
        assert buckets[-1] == (float("inf"), count)
        depth = {s.labels["state"]: s.value for s in fams["pigeon_queue_depth"].samples}
        assert depth == {"queued": 3, "inflight": 0, "deferred": 2, "delivered": 0,
                         "failed": 0}, depth
        assert value(fams, "pigeon_smtp_connections_open", "pigeon_smtp_connections_open") == 2


@test
def label_values_escaped():
    tricky = ['say "hi"', "back\\slash", "two\nlines", "caf\u00e9 \U0001F4E7", "a,b}c=d",
              "trailing\\", "", "{x=\"y\"}"]
    with Tool() as t:
        for i, v in enumerate(tricky):
            for _ in range(i + 1):
                t.cmd("label " + v.encode("utf-8").hex())
        text = t.scrape()
        assert 'value="say \\"hi\\""' in text
        assert 'value="two\\nlines"' in text
        assert 'value="trailing\\\\"' in text
        got = {s.labels["value"]: s.value for s in families(text)["pigeon_test_labels"].samples}
        assert got == {v: i + 1 for i, v in enumerate(tricky)}, got


@test
def refresh_hook_runs_before_each_scrape():
    with Tool() as t:
        ages = []
        for _ in range(3):
            fams = families(t.scrape())
            ages.append(value(fams, "pigeon_queue_oldest_age_seconds",
                              "pigeon_queue_oldest_age_seconds"))
        assert ages == [1, 2, 3], ages


@test
def healthz_and_errors():
    with Tool() as t:
        assert t.get("/healthz")[::2] == (200, b"ok\n")
        t.cmd("unhealthy spool is locked")
        status, headers, body = t.get("/healthz")
        assert (status, body) == (503, b"spool is locked\n"), (status, body)
        t.cmd("healthy")
        assert t.get("/healthz")[::2] == (200, b"ok\n")
        for path in ("/", "/metrics/", "/metricsx", "/favicon.ico", "/healthz/x"):
            assert t.get(path)[0] == 404, path
        # The query string is not part of the path.
        assert t.get("/metrics?name[]=x")[0] == 200
        for method in ("POST", "PUT", "DELETE"):
            status, headers, _ = t.get("/metrics", method=method, data=b"x=1")
            assert status == 405, (method, status)
            assert headers["Allow"] == "GET, HEAD", headers["Allow"]
        status, headers, body = t.get("/metrics", method="HEAD")
        assert status == 200 and body == b"" and headers["Content-Type"] == CONTENT_TYPE


@test
def scrapes_race_updates():
    burst = 20000
    with Tool() as t:
        seen, problems = [], []

        def scraper():
            try:
                while not done.is_set():
                    fams = families(t.scrape())
                    seen.append(value(fams, "pigeon_messages", "pigeon_messages_total",
                                      result="sent"))
            except Exception as e:  # reported below
                problems.append(e)
        done = threading.Event()
        threads = [threading.Thread(target=scraper) for _ in range(3)]
        for th in threads:
            th.start()
        t.cmd("burst %d" % burst)
        t.cmd("burst %d" % burst)
        done.set()
        for th in threads:
            th.join(30)
        assert not problems, problems
        assert seen, "no scrape completed"
        assert all(0 <= v <= 2 * burst for v in seen)
        final = value(families(t.scrape()), "pigeon_messages", "pigeon_messages_total",
                      result="sent")
        assert final == 2 * burst, final


@test
def busy_port_and_bad_address():
    with Tool() as t:
        rc, out, _ = harness.run_cmd([harness.build_tool("metrics"), "127.0.0.1:%d" % t.port],
                                     input=b"")
        assert rc == 1 and out.strip() == b"ERR PIGEON_ERR_NETWORK", (rc, out)
    rc, out, _ = harness.run_cmd([harness.build_tool("metrics"), "localhost:0"], input=b"")
    assert rc == 1 and out.strip() == b"ERR PIGEON_ERR_INVALID", (rc, out)


@test
def ipv6_loopback():
    try:
        t = Tool("[::1]:0")
    except RuntimeError as e:
        raise harness.Skip("no IPv6 loopback: %s" % e)
    with t:
        t.cmd("message sent")
        fams = families(t.scrape())
        assert value(fams, "pigeon_messages", "pigeon_messages_total", result="sent") == 1


# ---- the Grafana dashboard ----

def dashboard_exprs(dash):
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    exprs = []

    def walk(panels):
        for p in panels:
            for target in p.get("targets", []):
                exprs.append(target["expr"])
            walk(p.get("panels", []))
    walk(dash["panels"])
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]
            exprs.append(q["query"] if isinstance(q, dict) else q)
    return exprs


@test
def grafana_dashboard_matches_metrics():
    path = os.path.join(harness.source_dir(), "docs", "grafana-dashboard.json")
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    assert 36 <= dash["schemaVersion"] <= 41, dash["schemaVersion"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = []

    def walk(panels):
        for p in panels:
            ids.append(p["id"])
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, p["title"]
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p
                assert p["targets"], p["title"]
            walk(p.get("panels", []))
    walk(dash["panels"])
    assert len(ids) == len(set(ids)), "duplicate panel ids"

    # What the standard set renders: sample names and each family's labels.
    with Tool() as t:
        t.cmd("message sent")
        t.cmd("error 550 13")
        t.cmd("attempt 1")
        fams = families(t.scrape())
    rendered = {}
    for f in fams.values():
        for s in f.samples:
            if s.name.startswith("pigeon_") and not s.name.startswith("pigeon_test_"):
                rendered.setdefault(s.name, set()).update(s.labels)
    exprs = dashboard_exprs(dash)
    used = set()
    for expr in exprs:
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
        names = set(re.findall(r"\bpigeon_[a-zA-Z0-9_:]*", expr))
        assert names, "expression without a pigeon metric: " + expr
        unknown = names - set(rendered)
        assert not unknown, "%s uses %s, not rendered" % (expr, unknown)
        used |= names
        labels = set().union(*(rendered[n] for n in names)) | {"instance", "job"}
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                assert label in labels, "%s groups by unknown label %s" % (expr, label)
        for label in re.findall(r"[{,]\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!=|!~|=)", expr):
            assert label in labels, "%s selects on unknown label %s" % (expr, label)
        if "histogram_quantile" in expr:
            assert "_bucket" in expr and re.search(r"by \([^)]*\ble\b", expr), expr
    # Every standard metric has a panel.
    for name, kind in STANDARD.items():
        wanted = name + "_bucket" if kind == "histogram" else name
        assert wanted in used, "no panel for " + name
    for q in ("0.5", "0.95", "0.99"):
        assert any(e.startswith("histogram_quantile(%s," % q) for e in exprs), q


if __name__ == "__main__":
    harness.run()
