#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fails when a shared library exports a symbol its public headers do not declare.

Usage: exports.py <library> <namespace> <header>...

Every dynamic symbol the library defines (nm -D --defined-only), demangled, must be a name in
<namespace> ("Sluice" for libsluice-core, "Sluice::Test" for TestSupport): a function or
variable of a class, namespace or function the given headers declare, or the vtable, typeinfo
or a thunk of such a class. Anything else - a host class (Sluice::Engine), a helper from a .cpp,
a standard library or Qt template instantiated by the library's sources - is listed and the
check exits 1. A static local of an inline function or lambda counts as part of the entity that
encloses it. Names are matched against the headers' text with comments removed: the first
name below <namespace> must be declared there (class, struct, enum, namespace, or a
function or variable name followed by '(', '=', ';' or '{'), each further component must appear
there as a word. moc's members (Q_OBJECT) are accepted for classes that qualify.
"""
import re
import subprocess
import sys

MOC_MEMBERS = {"staticMetaObject", "metaObject", "qt_metacast", "qt_metacall", "qt_static_metacall",
               "tr", "trUtf8"}
PREFIXES = ("vtable for ", "typeinfo for ", "typeinfo name for ", "VTT for ", "non-virtual thunk to ",
            "virtual thunk to ", "covariant return thunk to ", "guard variable for ")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def split_top(name, sep="::"):
    """Splits at sep outside <> and ()."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(name):
        c = name[i]
        if c in "<(":
            depth += 1
        elif c in ">)":
            depth -= 1
        if depth == 0 and name.startswith(sep, i):
            parts.append(cur)
            cur = ""
            i += len(sep)
            continue
        cur += c
        i += 1
    parts.append(cur)
    return parts


def qualified_name(demangled):
    """'Sluice::X::f(QString const&) const' -> 'Sluice::X::f' (template arguments dropped)."""
    depth, out = 0, ""
    for c in demangled:
        if c == "<":
            depth += 1
            continue
        if c == ">":
            depth -= 1
            continue
        if depth:
            continue
        if c == "(" and not out.endswith("operator"):
            break
        out += c
    return out.strip()


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    library, namespace, headers = sys.argv[1], sys.argv[2], sys.argv[3:]
    text = "\n".join(strip_comments(open(h, encoding="utf-8").read()) for h in headers)
    words = set(re.findall(r"\b[A-Za-z_]\w*\b", text))
    declared = set(re.findall(r"\b(?:class|struct|union|enum(?:\s+class)?|namespace)\s+(?:SLUICE_\w*EXPORT\s+)?([A-Za-z_]\w*)", text))
    declared |= set(re.findall(r"\b([A-Za-z_]\w*)\s*(?:\(|=|;|\{|\[)", text))

    nm = subprocess.run(["nm", "-D", "--defined-only", "--format=posix", library], check=True,
                        capture_output=True, text=True).stdout.split("\n")
    mangled = [line.split()[0] for line in nm if line.strip()]
    demangled = subprocess.run(["c++filt"], input="\n".join(mangled), check=True, capture_output=True,
                               text=True).stdout.split("\n")
    ns = split_top(namespace)
    bad, good = [], 0
    for raw, name in zip(mangled, demangled):
        subject = name
        for p in PREFIXES:
            if subject.startswith(p):
                subject = subject[len(p):]
                break
        parts = split_top(qualified_name(subject))
        why = None
        if parts[:len(ns)] != ns or len(parts) == len(ns):
            why = f"outside namespace {namespace}"
        else:
            rest = parts[len(ns):]
            # A static local of an inline function or lambda (QStringLiteral's data in a default
            # member initializer): judged by the entity that encloses it.
            lambdas = [i for i, p in enumerate(rest) if p.startswith("{")]
            if lambdas:
                rest = rest[:lambdas[0]]
            if not rest or "(anonymous namespace)" in rest:
                why = "internal (anonymous namespace)"
            elif rest[0] not in declared:
                why = f"'{rest[0]}' is not declared in the public headers"
            else:
                for comp in rest[1:]:
                    comp = comp.lstrip("~")
                    if comp in MOC_MEMBERS or comp.startswith("operator"):
                        continue
                    if comp not in words:
                        why = f"'{comp}' does not appear in the public headers"
                        break
        if why:
            bad.append(f"  {name}\n      ({raw}: {why})")
        else:
            good += 1
    print(f"{library}: {good + len(bad)} exported symbols, {good} declared in the public headers")
    if bad:
        print(f"{len(bad)} exported symbols are not part of the public API:")
        print("\n".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
