#!/usr/bin/python3
"""Checks that lib/ keeps its layers: each module folder depends only on the folders
below it (by #include and by the symbols its objects use), and no two files call each
other. The order is documented in lib/README.md; a change to it belongs in both places.

Usage: layering.py SOURCE_DIR [BUILD_DIR]  (the symbol check needs the built objects)
"""
import glob
import os
import re
import subprocess
import sys

# Each module and the modules it may use. Keep in sync with lib/README.md.
ALLOWED = {
    "util": set(),
    "codec": {"util"},
    "address": {"util", "codec"},
    "mime": {"util", "codec", "address"},
    "net": {"util"},
    "smtp": {"util", "codec", "address", "mime", "net"},
    "spool": {"util"},
    "metrics": {"util", "http"},
}
# Modules added later declare themselves in lib/<module>/LAYER: one line naming the
# modules it may use, space-separated (empty for none).


def modules(lib):
    allowed = dict(ALLOWED)
    for layer in glob.glob(os.path.join(lib, "*", "LAYER")):
        mod = os.path.basename(os.path.dirname(layer))
        with open(layer) as f:
            allowed[mod] = set(f.read().split())
    return allowed


def include_errors(lib, allowed):
    errors = []
    for path in sorted(glob.glob(os.path.join(lib, "*", "*.[ch]"))):
        mod = os.path.basename(os.path.dirname(path))
        if mod not in allowed:
            errors.append(f"{path}: module '{mod}' is not in the layer table")
            continue
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                inc = m.group(1)
                if "/" not in inc:
                    errors.append(f"{path}:{n}: include \"{inc}\" without its module folder")
                    continue
                target = inc.split("/")[0]
                if target in ("pigeon", mod):
                    continue
                if target not in allowed[mod]:
                    errors.append(f"{path}:{n}: {mod} may not use {target} (\"{inc}\")")
    return errors


def same_unit(a, b):
    """x.c and x_part.c are one unit split for size (spool_sqlite.c, spool_sqlite_work.c):
    they may call each other. Any other pair of files must depend one way."""
    a, b = os.path.basename(a), os.path.basename(b)
    return a.startswith(b + "_") or b.startswith(a + "_")


def symbol_errors(build, allowed):
    objs = sorted(glob.glob(os.path.join(build, "CMakeFiles", "pigeon_objs.dir", "lib", "*", "*.o")))
    if not objs:
        return [], 0
    defined, used = {}, {}
    names = {}
    for o in objs:
        name = os.path.relpath(o, os.path.join(build, "CMakeFiles", "pigeon_objs.dir", "lib"))
        names[o] = name[: -len(".c.o")] if name.endswith(".c.o") else name
        used[names[o]] = set()
    # One nm for every object ("FILE: SYMBOL TYPE ..." lines): an nm per object cost
    # ~0.2 s of start-up each, most of this test's time.
    out = subprocess.run(["nm", "-P", "-A"] + objs, capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        obj, _, rest = line.partition(": ")
        parts = rest.split()
        if obj not in names or len(parts) < 2:
            continue
        name, sym, kind = names[obj], parts[0], parts[1]
        if kind == "U":
            used[name].add(sym)
        elif kind in "TDBRC":
            defined[sym] = name
    # lib/lazy's stubs stand for the libraries they load (OpenSSL, SQLite, libpq...): a
    # call of SSL_new is a call into libssl, not into lib/lazy; its hooks (pg_*) count.
    edges = {f: {defined[s] for s in syms if s in defined and defined[s] != f
                 and (not defined[s].startswith("lazy/") or s.startswith("pg_"))}
             for f, syms in used.items()}
    errors = []
    for f, targets in sorted(edges.items()):
        fmod = f.split("/")[0]
        for t in sorted(targets):
            tmod = t.split("/")[0]
            if tmod != fmod and tmod not in allowed.get(fmod, set()):
                errors.append(f"lib/{f}.c calls into lib/{t}.c: {fmod} may not use {tmod}")
            if f < t and f in edges.get(t, set()) and not same_unit(f, t):
                errors.append(f"lib/{f}.c and lib/{t}.c call each other")
    return errors, len(objs)


def main():
    src = sys.argv[1]
    build = sys.argv[2] if len(sys.argv) > 2 else None
    lib = os.path.join(src, "lib")
    allowed = modules(lib)
    errors = include_errors(lib, allowed)
    nobj = 0
    if build:
        serr, nobj = symbol_errors(build, allowed)
        errors += serr
    for e in errors:
        print(e)
    files = len(glob.glob(os.path.join(lib, "*", "*.[ch]")))
    print(f"layering: {files} files in {len(allowed)} modules, {nobj} objects: "
          f"{0 if errors else 1} passed, {1 if errors else 0} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
