"""`pigeon dns check` against a real DNS server (dnsmasq) started on loopback with fixture
zones: a good setup, two SPF records, 11 lookups, an include loop, void lookups, a truncated
and a revoked DKIM key, DMARC syntax errors, DMARC from the organizational domain, a listed
IP with its TXT reason, a refusing blocklist, a null MX, SERVFAIL and timeouts (issue 9)."""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import threading

import harness
from harness import test

_state = {}


def _servfail_responder():
    """A UDP server answering every query with RCODE 2 (SERVFAIL), for dnsmasq to forward
    a subdomain to."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                data, peer = s.recvfrom(4096)
            except OSError:
                return
            if len(data) < 12:
                continue
            flags = 0x8000 | (struct.unpack(">H", data[2:4])[0] & 0x0100) | 0x0080 | 2
            s.sendto(data[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0) + data[12:], peer)

    threading.Thread(target=serve, daemon=True).start()
    harness.at_exit(s.close)
    return s.getsockname()[1]


def _truncating_responder():
    """A UDP server answering every query with TC set and no records, on a port where TCP
    is bound but not listening (connections are refused): the answer can never be had."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))

    def serve():
        while True:
            try:
                data, peer = s.recvfrom(4096)
            except OSError:
                return
            if len(data) < 12:
                continue
            flags = 0x8000 | 0x0200 | (struct.unpack(">H", data[2:4])[0] & 0x0100) | 0x0080
            s.sendto(data[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0) + data[12:], peer)

    threading.Thread(target=serve, daemon=True).start()
    harness.at_exit(s.close)
    harness.at_exit(tcp.close)
    return port


def _dead_port():
    """A UDP port with nothing behind it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _keys(tmp):
    key = os.path.join(tmp, "dkim.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", key], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    other = os.path.join(tmp, "other.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", other], check=True,
                   capture_output=True)
    ed = subprocess.run(["openssl", "pkey", "-in", other, "-pubout", "-outform", "DER"],
                        check=True, capture_output=True).stdout
    # RFC 8463 4.2: the raw 32-byte key, not the SubjectPublicKeyInfo.
    return key, other, base64.b64encode(der).decode(), base64.b64encode(ed[-32:]).decode()


def _txt(name, *strings):
    # On the command line dnsmasq takes the strings unquoted, comma-separated.
    assert not any("," in s for s in strings)
    return "--txt-record=%s,%s" % (name, ",".join(strings))


def _big_spf():
    """An SPF record of 40 ip4: terms (about 800 bytes, in 255-byte strings): over UDP's
    512 bytes, so the answer comes truncated and must be fetched again over TCP."""
    rec = "v=spf1 " + " ".join("ip4:198.18.%d.0/24" % i for i in range(40)) + " -all"
    return [rec[i:i + 255] for i in range(0, len(rec), 255)]


def _fixtures(pub, edpub, sf_port, dead_port):
    a = [
        # good.test: everything right.
        _txt("good.test", "v=spf1 ip4:192.0.2.0/24 include:_spf.good.test -all"),
        _txt("_spf.good.test", "v=spf1 ip4:198.51.100.7 ~all"),
        "--mx-host=good.test,mx.good.test,10",
        "--host-record=mx.good.test,192.0.2.1",
        _txt("_dmarc.good.test", "v=DMARC1; p=reject; rua=mailto:dmarc@good.test; adkim=s"),
        # A 2048-bit key is longer than one 255-byte string: split in two, as published.
        _txt("s1._domainkey.good.test", "v=DKIM1; k=rsa; p=" + pub[:200], pub[200:]),
        _txt("s2._domainkey.good.test", "v=DKIM1; k=ed25519; p=" + edpub),
        _txt("big.test", *_big_spf()),
        _txt("_mta-sts.good.test", "v=STSv1; id=20240101"),
        _txt("_smtp._tls.good.test", "v=TLSRPTv1; rua=mailto:tls@good.test"),
        _txt("default._bimi.good.test", "v=BIMI1; l=https://good.test/logo.svg"),
        # The provider's submission host, inside good.test's range.
        "--host-record=smtp.exmail.qq.com,192.0.2.77",
        # ptr.test: the discouraged ptr mechanism.
        _txt("ptr.test", "v=spf1 ptr:ptr.test -all"),
        # An internationalized domain, published in its A-label form.
        "--mx-host=xn--fsqu00a.test,mx.good.test,5",
        # mech.test: mx, ip6, exists with macros, then redirect= to good.test.
        _txt("mech.test", "v=spf1 mx:good.test ip6:2001:db8::/32 "
             "exists:%{ir}.%{v}.x.mech.test redirect=good.test"),
        "--host-record=9.2.0.192.in-addr.x.mech.test,127.0.0.2",
        # two.test: two SPF records.
        _txt("two.test", "v=spf1 ip4:192.0.2.1 -all"),
        _txt("two.test", "v=spf1 include:_spf.good.test -all"),
        # many.test: 11 includes.
        _txt("many.test", "v=spf1 " + " ".join("include:i%d.many.test" % i
                                               for i in range(1, 12)) + " -all"),
    ] + [_txt("i%d.many.test" % i, "v=spf1 -all") for i in range(1, 12)] + [
        # loop.test <-> loop2.test.
        _txt("loop.test", "v=spf1 include:loop2.test -all"),
        _txt("loop2.test", "v=spf1 include:loop.test -all"),
        # void.test: three a: mechanisms naming nothing.
        _txt("void.test", "v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test -all"),
        # trunc.test: a DKIM key cut short; revoked.test: p= empty.
        _txt("s1._domainkey.trunc.test", "v=DKIM1; k=rsa; p=" + pub[:200]),
        _txt("s1._domainkey.revoked.test", "v=DKIM1; k=rsa; p="),
        # baddmarc.test: DMARC syntax errors.
        _txt("_dmarc.baddmarc.test", "v=DMARC1; p=block; pct=150; rua=dmarc@baddmarc.test"),
        # mail.orgfb.test: no DMARC of its own, the organizational domain's applies.
        _txt("mail.orgfb.test", "v=spf1 ip4:192.0.2.0/24 -all"),
        _txt("_dmarc.orgfb.test", "v=DMARC1; p=quarantine; sp=reject; rua=mailto:d@orgfb.test"),
        # nullmx.test: RFC 7505.
        "--mx-host=nullmx.test,.,0",
        # A DNSBL listing 203.0.113.9 with a reason; a Spamhaus-style refusal for 203.0.113.10.
        "--host-record=9.113.0.203.bl.fake.test,127.0.0.2",
        _txt("9.113.0.203.bl.fake.test", "Listed: hit our spam traps - see https://bl.fake.test"),
        "--host-record=10.113.0.203.bl.fake.test,127.255.255.254",
        # A domain blocklist listing evil.test.
        "--host-record=evil.test.dbl.fake.test,127.0.1.2",
        _txt("evil.test.dbl.fake.test", "evil.test is a spam domain"),
        # SERVFAIL and timeout, through dnsmasq's forwarding.
        "--server=/broken.test/127.0.0.1#%d" % sf_port,
        "--server=/dead.test/127.0.0.1#%d" % dead_port,
        _txt("sf.test", "v=spf1 include:x.broken.test -all"),
        _txt("tmo.test", "v=spf1 include:x.dead.test -all"),
    ]
    return a


def server():
    if "port" in _state:
        return _state
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.path.exists(dnsmasq):
        raise harness.Skip("dnsmasq is not installed")
    tmp = harness.tmpdir("dns")
    key, other, pub, edpub = _keys(tmp)
    sf_port, dead_port = _servfail_responder(), _dead_port()
    for _ in range(5):
        port = harness.free_port()
        proc = harness.spawn([dnsmasq, "--no-daemon", "--no-resolv", "--no-hosts",
                              "--port=%d" % port, "--listen-address=127.0.0.1",
                              "--bind-interfaces", "--pid-file=",
                              "--local=/test/", "--local=/org/", "--local=/net/",
                              "--local=/com/", "--cache-size=0"]
                             + _fixtures(pub, edpub, sf_port, dead_port))
        try:
            harness.wait_for(lambda: _answers(port), timeout=5, what="dnsmasq up")
        except AssertionError:
            harness.stop(proc)
            continue
        _state.update(port=port, key=key, other=other, pub=pub, tmp=tmp, proc=proc)
        return _state
    raise AssertionError("dnsmasq did not start: " + harness.read_log(proc))


def _answers(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        q = struct.pack(">HHHHHH", 7, 0x100, 1, 0, 0, 0) + b"\x04good\x04test\x00\x00\x10\x00\x01"
        s.sendto(q, ("127.0.0.1", port))
        return s.recv(4096)[:2] == b"\x00\x07"
    except OSError:
        return False
    finally:
        s.close()


def dns(*args, want_rc=None):
    st = server()
    env = {"PIGEON_CONFIG": None, "HOME": st["tmp"], "XDG_CONFIG_HOME": st["tmp"]}
    rc, out, err = harness.pigeon("dns", "check", *args, "--dns-server",
                                  "127.0.0.1:%d" % st["port"], env=env, timeout=60)
    out, err = out.decode(), err.decode()
    if want_rc is not None:
        assert rc == want_rc, (rc, out, err)
    return rc, out, err


def dns_json(*args, want_rc=None):
    rc, out, err = dns("--json", *args, want_rc=want_rc)
    return rc, json.loads(out)


def items(report, check):
    return [c for c in report["checks"] if c["check"] == check]


def one(report, check):
    found = items(report, check)
    assert len(found) == 1, (check, report)
    return found[0]


@test
def good_setup_passes_everything():
    st = server()
    rc, r = dns_json("good.test", "--ip", "192.0.2.5", "--ip", "198.51.100.7", "--selector",
                     "s1", "--dkim-key", st["key"], "--mail-from", "bounce@good.test")
    bad = [c for c in r["checks"] if c["verdict"] not in ("pass", "info")]
    assert rc == 0 and r["verdict"] == "pass" and r["exit"] == 0 and not bad, r
    assert "10 mx.good.test" in one(r, "mx")["summary"]
    spf = one(r, "spf")
    assert "1 of 10 DNS lookups" in spf["summary"], spf
    assert any("include:_spf.good.test" in line for line in spf["detail"]), spf
    ips = items(r, "spf-ip")
    assert "ip4:192.0.2.0/24" in ips[0]["summary"], ips
    assert "include:_spf.good.test" in ips[1]["summary"], ips
    assert "rsa key of 2048 bits" in one(r, "dkim")["summary"]
    assert "matches" in one(r, "dkim-key")["summary"]
    assert "p=reject" in one(r, "dmarc")["summary"]
    assert one(r, "alignment")["verdict"] == "pass"
    for c in ("mta-sts", "tls-rpt", "bimi"):
        assert one(r, c)["verdict"] == "pass", r
    # The default blocklists were asked (and answered NXDOMAIN by the local server).
    zones = " ".join(c["summary"] for c in items(r, "dnsbl"))
    assert "zen.spamhaus.org" in zones and "bl.spamcop.net" in zones, zones


@test
def text_report_and_exit_codes():
    rc, out, _ = dns("good.test", "--ip", "203.0.113.9", "--no-default-lists")
    assert rc == 2, out
    assert "FAIL  spf-ip" in out and "fix: add ip4:203.0.113.9" in out, out
    assert "verdict: fail" in out, out


@test
def wrong_private_key_fails():
    st = server()
    rc, r = dns_json("good.test", "--selector", "s1", "--dkim-key", st["other"],
                     "--no-default-lists", want_rc=2)
    assert one(r, "dkim-key")["verdict"] == "fail" and "does not match" in \
        one(r, "dkim-key")["summary"], r


@test
def two_spf_records():
    rc, r = dns_json("two.test", "--no-default-lists", want_rc=2)
    spf = one(r, "spf")
    assert spf["verdict"] == "fail" and "2 SPF records" in spf["summary"], spf
    assert "merge" in spf["fix"]


@test
def no_spf_record_names_the_record_to_publish():
    rc, r = dns_json("baddmarc.test", "--no-default-lists", "--provider", "sendgrid",
                     "--ip", "192.0.2.8", want_rc=2)
    spf = one(r, "spf")
    assert "publishes no SPF record (NODATA)" in spf["summary"], spf
    assert spf["fix"] == 'publish TXT "v=spf1 include:sendgrid.net ip4:192.0.2.8 ~all" at ' \
        "baddmarc.test", spf


@test
def eleven_lookups():
    rc, r = dns_json("many.test", "--no-default-lists", want_rc=2)
    spf = one(r, "spf")
    assert spf["verdict"] == "fail" and "more than 10 DNS lookups" in spf["summary"], spf
    assert "include:i11.many.test" in spf["summary"], spf


@test
def include_loop():
    rc, r = dns_json("loop.test", "--no-default-lists", want_rc=2)
    spf = one(r, "spf")
    assert "include loop" in spf["summary"] and "loop2.test" in spf["summary"], spf


@test
def void_lookups():
    rc, r = dns_json("void.test", "--no-default-lists", want_rc=2)
    spf = one(r, "spf")
    assert "more than 2 void lookups" in spf["summary"] and "nx3.void.test" in spf["summary"], spf


@test
def truncated_dkim_key():
    rc, r = dns_json("trunc.test", "--selector", "s1", "--no-default-lists", want_rc=2)
    dk = one(r, "dkim")
    assert dk["verdict"] == "fail" and "truncated" in dk["summary"], dk


@test
def revoked_dkim_key():
    rc, r = dns_json("revoked.test", "--selector", "s1", "--no-default-lists", want_rc=2)
    dk = one(r, "dkim")
    assert dk["verdict"] == "fail" and "revoked" in dk["summary"], dk


@test
def missing_dkim_key():
    rc, r = dns_json("good.test", "--selector", "nope", "--no-default-lists", want_rc=2)
    assert "no DKIM key at nope._domainkey.good.test" in one(r, "dkim")["summary"], r


@test
def dmarc_syntax_errors():
    rc, r = dns_json("baddmarc.test", "--no-default-lists", want_rc=2)
    dm = items(r, "dmarc")
    assert dm and dm[0]["verdict"] == "fail", r
    assert "p=block" in dm[0]["summary"] and "syntax errors (4)" in dm[0]["summary"], dm


@test
def dmarc_from_organizational_domain():
    rc, r = dns_json("mail.orgfb.test", "--no-default-lists")
    dm = one(r, "dmarc")
    assert "_dmarc.orgfb.test" in dm["summary"] and "organizational domain" in dm["summary"], dm
    assert "p=reject" in dm["summary"], dm  # sp= applies to the subdomain


@test
def no_dmarc_anywhere():
    rc, r = dns_json("two.test", "--no-default-lists", want_rc=2)
    dm = one(r, "dmarc")
    assert dm["verdict"] == "fail" and "no DMARC record at _dmarc.two.test" in dm["summary"], dm
    assert "v=DMARC1" in dm["fix"]


@test
def listed_ip_with_reason_and_refusal():
    rc, r = dns_json("good.test", "--ip", "203.0.113.9", "--ip", "203.0.113.10", "--ip",
                     "192.0.2.5", "--no-default-lists", "--dnsbl", "bl.fake.test", want_rc=2)
    bl = {c["summary"].split()[0]: c for c in items(r, "dnsbl")}
    listed = bl["203.0.113.9"]
    assert listed["verdict"] == "fail" and "listed in bl.fake.test" in listed["summary"], bl
    assert "hit our spam traps" in listed["summary"], listed
    refused = [c for c in items(r, "dnsbl") if "203.0.113.10" in c["summary"]][0]
    assert refused["verdict"] == "warn" and "refused" in refused["summary"], refused
    assert "not a listing" in refused["summary"], refused
    assert bl["192.0.2.5"]["verdict"] == "pass", bl


@test
def link_domains_in_domain_blocklist():
    msg = os.path.join(server()["tmp"], "msg.eml")
    with open(msg, "w") as f:
        f.write("From: a@good.test\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n"
                '<a href="https://www.evil.test/x?y=1">click</a> and http://good.test/ok\r\n')
    rc, r = dns_json("good.test", "--no-default-lists", "--dbl", "dbl.fake.test",
                     "--message", msg, want_rc=2)
    dbl = items(r, "dbl")
    evil = [c for c in dbl if c["summary"].startswith("evil.test")]
    assert evil and evil[0]["verdict"] == "fail" and "spam domain" in evil[0]["summary"], dbl
    assert [c for c in dbl if c["summary"].startswith("good.test")][0]["verdict"] == "pass"


@test
def null_mx():
    rc, r = dns_json("nullmx.test", "--no-default-lists", want_rc=2)
    mx = one(r, "mx")
    assert mx["verdict"] == "fail" and "null MX" in mx["summary"], mx


@test
def servfail_is_not_no_record():
    rc, r = dns_json("x.broken.test", "--no-default-lists")
    mx = one(r, "mx")
    assert "SERVFAIL" in mx["summary"] and mx["verdict"] == "warn", mx
    rc, r = dns_json("sf.test", "--no-default-lists")
    spf = one(r, "spf")
    assert "SERVFAIL" in spf["summary"] and "temperror" not in spf["verdict"], spf
    assert "no SPF record" not in spf["summary"] and spf["verdict"] == "warn", spf


@test
def timeout_is_not_no_record():
    rc, r = dns_json("tmo.test", "--no-default-lists", "--timeout", "0.3")
    spf = one(r, "spf")
    assert "timeout" in spf["summary"] and "x.dead.test" in spf["summary"], spf
    assert "no SPF record" not in spf["summary"] and spf["verdict"] == "warn", spf


@test
def ed25519_key_matches():
    st = server()
    rc, r = dns_json("good.test", "--selector", "s2", "--dkim-key", st["other"],
                     "--no-default-lists")
    assert "ed25519 key" in one(r, "dkim")["summary"], r
    assert one(r, "dkim-key")["verdict"] == "pass", r


@test
def large_answer_over_tcp():
    rc, r = dns_json("big.test", "--ip", "198.18.39.7", "--no-default-lists")
    assert one(r, "spf")["verdict"] == "pass", r
    ip = one(r, "spf-ip")
    assert ip["verdict"] == "pass" and "ip4:198.18.39.0/24" in ip["summary"], ip


@test
def truncated_answer_is_not_no_record():
    port = _truncating_responder()
    env = {"PIGEON_CONFIG": None, "HOME": server()["tmp"], "XDG_CONFIG_HOME": server()["tmp"]}
    rc, out, err = harness.pigeon("dns", "check", "good.test", "--json", "--no-default-lists",
                                  "--timeout", "0.5", "--dns-server", "127.0.0.1:%d" % port,
                                  env=env, timeout=60)
    r = json.loads(out)
    for check in ("mx", "spf", "dmarc"):
        c = items(r, check)[0]
        assert "truncated" in c["summary"] and c["verdict"] == "warn", (check, c)
        assert "no " not in c["summary"].split(":")[0], c


@test
def provider_include_missing():
    rc, r = dns_json("good.test", "--provider", "qq", "--ip", "192.0.2.5",
                     "--no-default-lists", want_rc=2)
    p = one(r, "spf-provider")
    assert p["verdict"] == "fail" and "spf.mail.qq.com" in p["summary"], p
    assert p["fix"] == "add include:spf.mail.qq.com before the all mechanism", p


@test
def account_provider_and_host():
    st = server()
    conf = os.path.join(st["tmp"], "pigeon.conf")
    with open(conf, "w") as f:
        f.write("[account work]\nprovider = qq-exmail\nfrom = news@mail.good.test\n")
    os.chmod(conf, 0o600)
    rc, out, err = harness.pigeon("dns", "check", "good.test", "--account", "work", "--json",
                                  "--no-default-lists", "--dnsbl", "bl.fake.test",
                                  "--dns-server", "127.0.0.1:%d" % st["port"],
                                  env={"PIGEON_CONFIG": conf}, timeout=60)
    r = json.loads(out)
    assert "smtp.exmail.qq.com" in one(r, "host")["summary"], r
    ip = one(r, "spf-ip")
    assert ip["summary"].startswith("192.0.2.77: pass"), ip
    assert "192.0.2.77 is not listed in bl.fake.test" in one(r, "dnsbl")["summary"], r
    p = one(r, "spf-provider")
    assert p["verdict"] == "fail" and "include:spf.mail.qq.com" in p["fix"], p
    # The envelope sender mail.good.test aligns relaxed with good.test (aspf=r).
    assert "mail.good.test aligns" in one(r, "alignment")["summary"], r


@test
def ptr_is_discouraged():
    rc, r = dns_json("ptr.test", "--no-default-lists")
    assert one(r, "spf-ptr")["verdict"] == "warn", r
    assert "1 of 10 DNS lookups" in one(r, "spf")["summary"], r


@test
def spf_mechanisms_macros_and_redirect():
    rc, r = dns_json("mech.test", "--no-default-lists", "--ip", "192.0.2.1", "--ip",
                     "2001:db8::5", "--ip", "192.0.2.9", "--ip", "198.51.100.7", "--ip",
                     "203.0.113.1")
    ips = items(r, "spf-ip")
    assert "mx:good.test matched" in ips[0]["summary"], ips
    assert "ip6:2001:db8::/32 matched" in ips[1]["summary"], ips
    assert "exists:%{ir}.%{v}.x.mech.test matched" in ips[2]["summary"], ips
    assert "include:_spf.good.test matched in good.test" in ips[3]["summary"], ips
    assert ips[4]["verdict"] == "fail" and "-all matched in good.test" in ips[4]["summary"], ips
    spf = one(r, "spf")
    assert "4 of 10 DNS lookups" in spf["summary"], spf
    assert any("redirect=good.test" in line for line in spf["detail"]), spf


@test
def internationalized_domain():
    rc, r = dns_json("例子.test", "--no-default-lists")
    assert r["domain"] == "xn--fsqu00a.test", r
    assert "5 mx.good.test" in one(r, "mx")["summary"], r


@test
def usage_errors():
    for args in (["dns"], ["dns", "check"], ["dns", "check", "a.test", "b.test"],
                 ["dns", "check", "not a domain"], ["dns", "check", "a.test", "--ip", "x"],
                 ["dns", "check", "a.test", "--dns-server", "127.0.0.1:99999"],
                 ["dns", "check", "a.test", "--bogus"], ["dns", "check", "a b.test"],
                 ["dns", "check", "a.test", "--timeout", "0"]):
        rc, out, err = harness.pigeon(*args, env={"PIGEON_CONFIG": None})
        assert rc == 64, (args, rc, out, err)
        assert err.count(b"\n") == 1, err


if __name__ == "__main__":
    harness.run()
