"""The Debian packages (`make deb`): scripts/mkdeb.sh packages the tree this test run
built (a full package build takes minutes here; `make deb` is the same script on a
build-deb tree with Debian's paths and hardening flags), then each package is extracted
with dpkg-deb -x into a clean directory and checked as a user would: `pigeon --version`
and `sendmail` (through the alternative's link) run from there, a C program compiles
against the extracted headers and pkg-config file and runs on the extracted shared
library (SONAME link), the file lists hold what they should and nothing from the build,
and the maintainer scripts are valid shell that register the sendmail alternative.
"""
import os
import re
import shutil
import subprocess

import harness
from harness import test

_debs = {}


def debs():
    """Builds the packages once: {package name: path}."""
    if not _debs:
        if shutil.which("dpkg-deb") is None:
            raise harness.Skip("dpkg-deb not installed")
        out = harness.tmpdir("pigeon-deb-")
        script = os.path.join(harness.source_dir(), "scripts", "mkdeb.sh")
        rc, stdout, err = harness.run_cmd(["bash", script, harness.build_dir(), out],
                                          env={"MKDEB_COMPRESSION": "none"}, timeout=180)
        assert rc == 0, err.decode()
        for path in stdout.decode().split():
            _debs[os.path.basename(path).split("_")[0]] = path
    return _debs


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True, text=True,
                          check=True).stdout.strip()


def files(deb):
    out = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[5].lstrip(".") for line in out.splitlines()} - {"/"}


def extract(*names):
    root = harness.tmpdir("pigeon-root-")
    for n in names:
        subprocess.run(["dpkg-deb", "-x", debs()[n], root], check=True)
    return root


def libdir(root):
    found = [d for d, _, fs in os.walk(os.path.join(root, "usr", "lib"))
             if "libpigeon.so.0" in fs]
    assert len(found) == 1, found
    return found[0]


@test(timeout=200)
def three_packages_with_their_fields():
    d = debs()
    assert sorted(d) == ["libpigeon-dev", "libpigeon0", "pigeon"], d
    version = field(d["pigeon"], "Version")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert "libssl3" in field(d["libpigeon0"], "Depends")
    assert "libpigeon" not in field(d["pigeon"], "Depends")  # libpigeon linked in
    assert f"libpigeon0 (= {version})" in field(d["libpigeon-dev"], "Depends")
    for deb in d.values():
        assert field(deb, "Maintainer") and field(deb, "Description")
    # The libraries loaded on first use (lib/lazy) are no NEEDED entry: the packages
    # still depend on them, at the versions that have every function the stubs resolve.
    for name in ("pigeon", "libpigeon0"):
        depends = field(d[name], "Depends")
        for package in ("libpq5 (>= ", "libgumbo1 (>= ", "libc-ares2 (>= ", "libidn2-0 (>= ",
                        "libcmark-gfm0", "libcmark-gfm-extensions0"):
            assert package in depends, (name, package, depends)


@test(timeout=200)
def command_runs_from_a_clean_directory():
    root = extract("pigeon")
    pigeon = os.path.join(root, "usr", "bin", "pigeon")
    rc, out, err = harness.run_cmd([pigeon, "--version"])
    assert rc == 0 and re.fullmatch(rb"pigeon \d+\.\d+\.\d+\n", out), (rc, out, err)
    # Links libc, OpenSSL and SQLite; finds the optional libraries when a feature needs
    # them (Markdown: cmark-gfm, then gumbo for the HTML), by their SONAME, installed.
    needed = subprocess.run(["readelf", "-d", pigeon], capture_output=True, text=True,
                            check=True).stdout
    for soname in ("libpq", "libgumbo", "libcmark", "libcares", "libidn2"):
        assert soname not in needed, (soname, needed)
    md = os.path.join(root, "notes.md")
    with open(md, "w") as f:
        f.write("| a | b |\n|---|---|\n| 1 | 2 |\n")
    rc, out, err = harness.run_cmd([pigeon, "send", "--dry-run", "--from", "a@example.com",
                                    "--to", "b@example.com", "--subject", "md",
                                    "--markdown-file", md], env={"PIGEON_CONFIG": "/dev/null"})
    assert rc == 0 and b"<table" in out, (rc, err)
    # /usr/sbin/sendmail will point at this link: the name selects sendmail mode.
    link = os.path.join(root, "usr", "libexec", "pigeon", "sendmail")
    assert os.readlink(link) == "../../bin/pigeon"
    rc, out, err = harness.run_cmd([link, "-bv", "x@example.org"], env={"PIGEON_CONFIG": None})
    assert rc == 64 and b"sendmail: -bv is not supported" in err, (rc, err)


@test(timeout=200)
def file_lists():
    d = debs()
    cmd = files(d["pigeon"])
    for f in ["/usr/bin/pigeon", "/usr/libexec/pigeon/sendmail",
              "/usr/share/man/man1/pigeon.1.gz", "/usr/share/man/man5/pigeon.conf.5.gz",
              "/lib/systemd/system/pigeon-daemon.service",
              "/lib/systemd/system/pigeon-serve.service", "/usr/lib/sysusers.d/pigeon.conf",
              "/usr/share/doc/pigeon/copyright", "/usr/share/doc/pigeon/changelog.gz"]:
        assert f in cmd, (f, sorted(cmd))
    lib = files(d["libpigeon0"])
    assert any(re.search(r"/libpigeon\.so\.0$", f) for f in lib), lib
    assert any(re.search(r"/libpigeon\.so\.0\.\d+\.\d+$", f) for f in lib), lib
    assert not any(f.endswith((".a", ".h", "libpigeon.so")) for f in lib), lib
    dev = files(d["libpigeon-dev"])
    for pattern in [r"^/usr/include/pigeon/pigeon\.h$", r"/pkgconfig/pigeon\.pc$",
                    r"/libpigeon\.so$", r"/libpigeon\.a$"]:
        assert any(re.search(pattern, f) for f in dev), (pattern, sorted(dev))
    headers = {f for f in dev if f.startswith("/usr/include/pigeon/") and f.endswith(".h")}
    src = {"/usr/include/pigeon/" + h for h in
           os.listdir(os.path.join(harness.source_dir(), "include", "pigeon"))}
    assert headers == src, (headers ^ src)
    for f in cmd | lib | dev:  # nothing from the build tree or a local prefix
        assert not re.search(r"/usr/local/|CMakeFiles|\.o$|/build", f), f


@test(timeout=200)
def library_and_headers_build_a_program():
    root = extract("libpigeon0", "libpigeon-dev")
    ld = libdir(root)
    so = subprocess.run(["readelf", "-d", os.path.join(ld, "libpigeon.so.0")],
                        capture_output=True, text=True, check=True).stdout
    assert "Library soname: [libpigeon.so.0]" in so, so
    prog = os.path.join(root, "t.c")
    with open(prog, "w") as f:
        f.write('#include <pigeon/pigeon.h>\n#include <stdio.h>\n'
                'int main(void) {\n  pigeon_message *m = pigeon_message_new();\n'
                '  if (m == NULL || pigeon_message_set_subject(m, "hi") != PIGEON_OK) return 1;\n'
                '  pigeon_message_free(m);\n  puts(pigeon_strerror(PIGEON_ERR_AUTH));\n'
                '  return 0;\n}\n')
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(ld, "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "pigeon"], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    # The .pc file finds its prefix relative to itself (pcfiledir): the moved tree works.
    norm = [f[:2] + os.path.normpath(f[2:]) if f[:2] in ("-I", "-L") else f for f in flags]
    assert f"-I{root}/usr/include" in norm and f"-L{ld}" in norm, flags
    extra = []
    with open(os.path.join(harness.build_dir(), "CMakeCache.txt")) as f:
        if "PIGEON_SANITIZE:BOOL=ON" in f.read():
            extra = ["-fsanitize=address,undefined"]
    exe = os.path.join(root, "t")
    subprocess.run(["cc", "-o", exe, prog, *flags, *extra], check=True)
    rc, out, err = harness.run_cmd([exe], env={"LD_LIBRARY_PATH": ld})
    assert rc == 0 and out.strip(), (rc, out, err)
    ldd = subprocess.run(["ldd", exe], env=dict(os.environ, LD_LIBRARY_PATH=ld),
                         capture_output=True, text=True).stdout
    assert os.path.join(ld, "libpigeon.so.0") in ldd, ldd


@test(timeout=200)
def maintainer_scripts():
    root = harness.tmpdir("pigeon-control-")
    subprocess.run(["dpkg-deb", "-e", debs()["pigeon"], root], check=True)
    for name in ("postinst", "prerm", "postrm"):
        path = os.path.join(root, name)
        assert os.access(path, os.X_OK), name
        subprocess.run(["sh", "-n", path], check=True)
    with open(os.path.join(root, "postinst")) as f:
        postinst = f.read()
    assert re.search(r"update-alternatives --install /usr/sbin/sendmail sendmail "
                     r"/usr/libexec/pigeon/sendmail \d+", postinst), postinst
    assert "systemd-sysusers" in postinst and "pigeon-daemon.service" in postinst
    with open(os.path.join(root, "prerm")) as f:
        assert "update-alternatives --remove sendmail /usr/libexec/pigeon/sendmail" in f.read()
    lib = harness.tmpdir("pigeon-control-")
    subprocess.run(["dpkg-deb", "-e", debs()["libpigeon0"], lib], check=True)
    with open(os.path.join(lib, "triggers")) as f:
        assert "ldconfig" in f.read()
    with open(os.path.join(lib, "symbols")) as f:
        syms = f.read()
    assert "pigeon_message_new@PIGEON_0" in syms and " pg_" not in syms, syms[:500]


if __name__ == "__main__":
    harness.run(file_timeout=300)
