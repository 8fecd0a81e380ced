"""Throwaway test PKI for pigeon's integration tests, made with the openssl CLI.

``pki.get()`` builds (once per process, cached) into a harness tmpdir:

- ``ca``:          a root CA ("pigeon test root CA");
- ``localhost``:   leaf CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (signed by ca);
- ``wrong_name``:  leaf CN=wrong.example, SAN DNS:wrong.example only (signed by ca);
- ``unknown_ca``:  leaf like localhost but signed by a second CA nobody trusts;
- ``expired``:     leaf like localhost, signed by ca, valid 2020-01-01..2020-01-02;
- ``wildcard``:    leaf CN=*.example.test, SAN DNS:*.example.test, no IP SAN.

Each leaf is a ``Leaf`` with ``cert``, ``key``, ``ca`` (trust anchor file that
verifies it when it is valid), ``chain`` (leaf + issuer PEM), ``sha256`` (lower
hex of SHA-256 over the DER certificate), ``sha256_colons`` (AA:BB:.. form),
``spki_sha256_b64`` (base64 SHA-256 of the DER SubjectPublicKeyInfo, the
HPKP/curl "pin" form).
"""

import base64
import hashlib
import os
import ssl
import subprocess
import threading

import harness

__all__ = ["Leaf", "Pki", "get", "make"]

_lock = threading.Lock()
_cache = {}


class Leaf:
    """One certificate with its key (paths) and fingerprints."""

    def __init__(self, name, cert, key, ca, chain):
        self.name = name
        self.cert = cert
        self.key = key
        self.ca = ca
        self.chain = chain
        with open(cert) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        self.der = der
        self.sha256 = hashlib.sha256(der).hexdigest()
        self.sha256_colons = ":".join("%02X" % b for b in hashlib.sha256(der).digest())
        spki = _openssl_bytes(["x509", "-in", cert, "-noout", "-pubkey"])
        spki_der = ssl.PEM_cert_to_DER_cert(
            spki.decode().replace("PUBLIC KEY", "CERTIFICATE"))
        self.spki_sha256_b64 = base64.b64encode(hashlib.sha256(spki_der).digest()).decode()

    def __repr__(self):
        return "Leaf(%s, %s)" % (self.name, self.cert)


class Pki:
    """The set of files; attributes listed in the module docstring."""

    def __init__(self, directory):
        self.dir = directory


def _openssl(args, cwd=None):
    proc = subprocess.run(["openssl"] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args),
                                                      proc.stderr.decode(errors="replace")))
    return proc.stdout


_openssl_bytes = _openssl


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def _key(path):
    _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
              "-out", path])
    return path


def _make_ca(d, name, cn):
    key = _key(os.path.join(d, name + ".key"))
    cert = os.path.join(d, name + ".crt")
    _openssl(["req", "-x509", "-new", "-key", key, "-out", cert, "-days", "3650",
              "-subj", "/O=pigeon tests/CN=" + cn, "-sha256",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign",
              "-addext", "subjectKeyIdentifier=hash"])
    return cert, key


def _ext_file(d, name, sans):
    return _write(os.path.join(d, name + ".ext"),
                  "basicConstraints=critical,CA:FALSE\n"
                  "keyUsage=critical,digitalSignature,keyEncipherment\n"
                  "extendedKeyUsage=serverAuth\n"
                  "subjectKeyIdentifier=hash\n"
                  "authorityKeyIdentifier=keyid\n"
                  "subjectAltName=%s\n" % ",".join(sans))


def _csr(d, name, cn):
    key = _key(os.path.join(d, name + ".key"))
    csr = os.path.join(d, name + ".csr")
    _openssl(["req", "-new", "-key", key, "-out", csr, "-subj", "/O=pigeon tests/CN=" + cn])
    return csr, key


def _leaf(d, name, cn, sans, ca_cert, ca_key, trust):
    csr, key = _csr(d, name, cn)
    cert = os.path.join(d, name + ".crt")
    _openssl(["x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
              "-CAcreateserial", "-out", cert, "-days", "825", "-sha256",
              "-extfile", _ext_file(d, name, sans)])
    return _finish(d, name, cert, key, ca_cert, trust)


def _finish(d, name, cert, key, issuer, trust):
    chain = os.path.join(d, name + ".chain.pem")
    with open(chain, "w") as out:
        for p in (cert, issuer):
            with open(p) as f:
                out.write(f.read())
    return Leaf(name, cert, key, trust, chain)


def _expired_leaf(d, ca_cert, ca_key):
    """A localhost leaf whose validity ended in 2020, via `openssl ca` which,
    unlike `openssl x509 -req` in OpenSSL 3.0, accepts explicit dates."""
    name = "expired"
    csr, key = _csr(d, name, "localhost")
    cadir = os.path.join(d, "ca-db")
    os.makedirs(cadir, exist_ok=True)
    _write(os.path.join(cadir, "index.txt"), "")
    _write(os.path.join(cadir, "serial"), "1000\n")
    conf = _write(os.path.join(d, "ca.cnf"), """
[ ca ]
default_ca = testca
[ testca ]
dir = %(dir)s
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = %(cert)s
private_key = %(key)s
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = leaf_ext
[ anything ]
organizationName = optional
commonName = supplied
[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
""" % {"dir": cadir, "cert": ca_cert, "key": ca_key})
    cert = os.path.join(d, name + ".crt")
    _openssl(["ca", "-batch", "-config", conf, "-in", csr, "-out", cert, "-notext",
              "-startdate", "20200101000000Z", "-enddate", "20200102000000Z"])
    # Prove it really is expired: -checkend 0 exits non-zero for an expired cert.
    proc = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-checkend", "0"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if proc.returncode == 0:
        raise RuntimeError("expired test certificate is not expired")
    return _finish(d, name, cert, key, ca_cert, ca_cert)


def make(directory):
    """Build the whole PKI into ``directory`` (no caching); return a Pki."""
    p = Pki(directory)
    d = directory
    p.ca, p.ca_key = _make_ca(d, "ca", "pigeon test root CA")
    p.other_ca, p.other_ca_key = _make_ca(d, "other-ca", "pigeon untrusted CA")
    p.localhost = _leaf(d, "localhost", "localhost", ["DNS:localhost", "IP:127.0.0.1"],
                        p.ca, p.ca_key, p.ca)
    p.wrong_name = _leaf(d, "wrong-name", "wrong.example", ["DNS:wrong.example"],
                         p.ca, p.ca_key, p.ca)
    p.unknown_ca = _leaf(d, "unknown-ca", "localhost", ["DNS:localhost", "IP:127.0.0.1"],
                         p.other_ca, p.other_ca_key, p.ca)
    p.wildcard = _leaf(d, "wildcard", "*.example.test", ["DNS:*.example.test"],
                       p.ca, p.ca_key, p.ca)
    p.expired = _expired_leaf(d, p.ca, p.ca_key)
    p.leaves = {"localhost": p.localhost, "wrong_name": p.wrong_name,
                "unknown_ca": p.unknown_ca, "wildcard": p.wildcard, "expired": p.expired}
    return p


def get(directory=None):
    """Return the process-wide test PKI, building it on first use.

    ``directory`` defaults to a harness tmpdir (removed at exit)."""
    with _lock:
        key = directory or "<default>"
        if key not in _cache:
            d = directory or harness.tmpdir("pigeon-pki-")
            os.makedirs(d, exist_ok=True)
            _cache[key] = make(d)
        return _cache[key]
