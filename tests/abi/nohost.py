#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fails when a plugin (or the SDK library) carries code of the host.

Usage: nohost.py <libsluice-host.a> <directory or file>...

The host (core/src: config, daemon, engine, plugin host, repository, store, logging) is a
static library linked only by the `sluice` executable, TestSupport and the tests. A plugin
that linked it, directly or through a static library of libs/, would carry its own copy of
host code and state. Every function and variable the host archive defines as a global
symbol (nm type T, D, B or R) is looked up in the full symbol table of every given .so
(hidden symbols included, nm without -D); any hit is listed and the check exits 1.
"""
import os
import subprocess
import sys


def defined(path):
    out = subprocess.run(["nm", "--defined-only", "--format=posix", path], capture_output=True,
                         text=True, check=True).stdout
    names = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[1]) == 1:
            names[parts[0]] = parts[1]
    return names


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    host = {n for n, t in defined(sys.argv[1]).items() if t in "TDBR"}
    files = []
    for arg in sys.argv[2:]:
        if os.path.isdir(arg):
            files += sorted(os.path.join(arg, f) for f in os.listdir(arg) if f.endswith(".so"))
        else:
            files.append(arg)
    if not host or not files:
        print("nohost: nothing to compare (no host symbols or no plugin files)", file=sys.stderr)
        return 1
    failed = False
    for f in files:
        hits = sorted(n for n, t in defined(f).items() if n in host and t.upper() in "TDBR")
        if hits:
            failed = True
            shown = subprocess.run(["c++filt"], input="\n".join(hits[:20]), capture_output=True, text=True).stdout
            print(f"{f}: {len(hits)} symbols of the host:\n" + "".join("  " + l + "\n" for l in shown.splitlines()))
    print(f"nohost: {len(files)} files checked against {len(host)} host symbols: "
          + ("host code found" if failed else "none carries host code"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
