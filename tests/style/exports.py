#!/usr/bin/python3
"""Checks that libpigeon.so exports exactly the public API: every function declared in
include/pigeon/*.h is a defined dynamic symbol of the library, and every symbol the
library exports is declared there (lib/pigeon.map keeps pg_* internals local). An
internal function named pigeon_* by mistake, or a public one never defined, fails here.

Usage: exports.py SOURCE_DIR BUILD_DIR
"""
import glob
import os
import re
import subprocess
import sys


def declared(include):
    names = set()
    for path in glob.glob(os.path.join(include, "pigeon", "*.h")):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        # Preprocessor lines (with their continuations) declare macros, not functions.
        text = re.sub(r"^\s*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
        names.update(re.findall(r"\b(pigeon_[A-Za-z0-9_]+)\s*\(", text))
    return names


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True,
                         text=True, check=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtWiDdBbRrV":
            syms.add(parts[2].split("@")[0])
    return syms


def main():
    src, build = sys.argv[1], sys.argv[2]
    lib = os.path.join(build, "libpigeon.so")
    if not os.path.exists(lib):
        print(f"exports.py: {lib} not built")
        return 1
    decl, exp = declared(os.path.join(src, "include")), exported(lib)
    errors = []
    for name in sorted(decl - exp):
        errors.append(f"declared in include/pigeon/ but not exported: {name}")
    for name in sorted(exp - decl):
        if name != "PIGEON_0":
            errors.append(f"exported but not declared in include/pigeon/: {name}")
    for e in errors:
        print(e)
    print(f"{len(exp & decl)} public functions exported, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
