#!/usr/bin/env python3
"""Finds import circles between the files of each crate (ARCHITECTURE.md: "no two files import each
other"), and checks the apiserver's one-way layer rule.

A file imports another when it names an item of the other's module: `use crate::a::b`, `crate::a::b`
in an expression or type, `super::x`, `self::child::x`, or a bare `child::x` for a module the file
declares with `mod child;`. A `pub use` re-export is followed one step, so `crate::App` re-exported
by lib.rs from `app.rs` counts as an import of `app.rs`. Declaring a module (`mod x;`) is not an
import: a parent that only declares and re-exports its children, and children that use each other
one way, make no circle.

Usage: scripts/import-cycles.py [crate-dir ...]   (default: every workspace crate)
Exit status 1 when any circle (or upward import in the apiserver) is found.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CRATES = ["proto", "store", "raft", "server", "apiserver", "mainstay", "testkit", "bench", "chaos"]
# The apiserver's layers, top to bottom (apiserver/src/lib.rs "# Layout"). A file in a layer may use
# the layers below it; none may use a layer above it. Files outside these folders (lib.rs, error.rs,
# resources.rs, …) are shared vocabulary, and `machinery` is usable by all and uses none of them.
APISERVER_LAYERS = ["http", "handlers", "request", "registry", "storage"]
SHARED = {("error",), ("resources",)}


def strip_code(text):
    """Removes comments, string and char literals, keeping line structure roughly."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 40]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 12]) or (c == "'" and re.match(r"'\\u\{[0-9a-fA-F]+\}'", text[i:i + 12])):
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            i += len(m.group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def inline_modules(code):
    """(start, end, name) of every inline `mod name { … }` block, nested ones included."""
    spans = []
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", code):
        depth, i = 1, m.end()
        while i < len(code) and depth:
            if code[i] == "{":
                depth += 1
            elif code[i] == "}":
                depth -= 1
            i += 1
        spans.append((m.end(), i, m.group(1)))
    return spans


def expand_use_tree(tree):
    """`a::{b, c::{d, e as f}}` -> ['a::b', 'a::c::d', 'a::c::e']"""
    tree = re.sub(r"\s+", "", tree)

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def walk(prefix, s):
        s = re.sub(r"as\w+$", "", s) if "{" not in s else s
        if "{" in s:
            head, _, rest = s.partition("{")
            inner = rest[: rest.rfind("}")]
            head = head.rstrip(":")
            base = prefix + ([head] if head else [])
            res = []
            for part in split_top(inner):
                res.extend(walk(base, part))
            return res
        segs = [x for x in s.split("::") if x]
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        if segs and segs[-1] == "*":
            segs = segs[:-1]
        return ["::".join(prefix + segs)]

    out = []
    for part in split_top(tree):
        out.extend(walk([], part))
    return out


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path tuple -> file path
        self.children = {}  # module path -> set of child module names declared with `mod x;`
        self.reexports = {}  # module path -> {name: absolute path tuple}
        self.code = {}
        for dirpath, _, names in os.walk(src):
            for name in names:
                if name.endswith(".rs"):
                    path = os.path.join(dirpath, name)
                    self.code[path] = strip_code(open(path, encoding="utf-8").read())
        self._map_modules()

    def _map_modules(self):
        roots = [p for p in ("lib.rs", "main.rs") if os.path.exists(os.path.join(self.src, p))]
        stack = [((), os.path.join(self.src, r)) for r in roots]
        while stack:
            module, path = stack.pop()
            if path not in self.code or module in self.files:
                continue
            self.files[module] = path
            code = self.code[path]
            base = os.path.dirname(path)
            if os.path.basename(path) not in ("lib.rs", "main.rs", "mod.rs"):
                base = os.path.join(base, os.path.basename(path)[:-3])
            kids = set()
            for m in re.finditer(r'(#\[path\s*=\s*""\]\s*)?(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', code):
                name = m.group(2)
                kids.add(name)
                for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                    if os.path.exists(cand):
                        stack.append((module + (name,), cand))
                        break
            # `#[path = "x.rs"] mod y;` (strings are stripped, so read the raw file for these)
            raw = open(path, encoding="utf-8").read()
            for m in re.finditer(r'#\[path\s*=\s*"([^"]+)"\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', raw):
                kids.add(m.group(2))
                stack.append((module + (m.group(2),), os.path.normpath(os.path.join(os.path.dirname(path), m.group(1)))))
            self.children[module] = kids

    def resolve(self, module, segs):
        """An absolute module-relative path for `segs` as written in `module`, or None."""
        if not segs:
            return None
        if segs[0] == "crate":
            return tuple(segs[1:])
        if segs[0] in ("super", "self"):
            cur = list(module)
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    if not cur:
                        return None
                    cur.pop()
                segs = segs[1:]
            return tuple(cur) + tuple(segs)
        if segs[0] in self.children.get(module, ()):
            return tuple(module) + tuple(segs)
        return None

    def target_file(self, abspath, seen=0):
        """The file that owns the item at `abspath`: the longest module prefix, following re-exports."""
        for k in range(len(abspath), -1, -1):
            mod = abspath[:k]
            if mod in self.files:
                rest = abspath[k:]
                target = self.reexports.get(mod, {}).get(rest[0]) if rest and seen < 4 else None
                if target is not None:
                    return self.target_file(target + tuple(rest[1:]), seen + 1)
                return mod
        return None

    def edges(self):
        uses = {}
        for module, path in self.files.items():
            code = self.code[path]
            refs = []
            exports = {}
            inline = inline_modules(code)

            def at(pos):
                # the module a position is in: this file's, or an inline `mod x { … }` inside it
                return module + tuple(name for (start, end, name) in inline if start <= pos < end)

            for m in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", code):
                here = at(m.start())
                for p in expand_use_tree(m.group(2)):
                    segs = [s for s in p.split("::") if s]
                    a = self.resolve(here, segs)
                    if a is not None:
                        refs.append(a)
                        if m.group(1) and segs and here == module:
                            exports[segs[-1]] = a
            for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", code):
                a = self.resolve(at(m.start()), m.group(1).split("::"))
                if a is not None:
                    refs.append(a)
            for kid in self.children.get(module, ()):
                for m in re.finditer(r"(?<![\w:])" + kid + r"((?:::\w+)+)", code):
                    refs.append(tuple(module) + (kid,) + tuple(m.group(1).split("::")[1:]))
            uses[module] = refs
            self.reexports[module] = exports
        graph = {}
        for module, refs in uses.items():
            out = set()
            for a in refs:
                t = self.target_file(a)
                if t is None or t == module:
                    continue
                # an inline `mod tests` child of this file is this file
                if t[: len(module)] == module and t not in self.files:
                    continue
                out.add(t)
            graph[module] = out
        return graph


def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    crates = sys.argv[1:] or DEFAULT_CRATES
    failed = False
    for name in crates:
        src = os.path.join(ROOT, name, "src")
        crate = Crate(src)
        graph = crate.edges()
        rel = lambda m: os.path.relpath(crate.files[m], ROOT)
        for comp in sccs(graph):
            if len(comp) > 1:
                failed = True
                members = sorted(rel(m) for m in comp)
                print(f"import circle in {name}: " + ", ".join(members))
                for a in comp:
                    for b in sorted(graph[a] & set(comp)):
                        print(f"    {rel(a)} -> {rel(b)}")
        if name == "apiserver":
            for a, outs in graph.items():
                for b in outs:
                    la = APISERVER_LAYERS.index(a[0]) if a and a[0] in APISERVER_LAYERS else None
                    lb = APISERVER_LAYERS.index(b[0]) if b and b[0] in APISERVER_LAYERS else None
                    upward = la is not None and lb is not None and lb < la
                    # machinery uses only itself, error.rs and resources.rs; those two use no layer.
                    from_machinery = a[:1] == ("machinery",) and b[:1] != ("machinery",) and b not in SHARED
                    shared_up = a in SHARED and lb is not None
                    if upward or from_machinery or shared_up:
                        failed = True
                        print(f"apiserver layer rule broken: {rel(a)} -> {rel(b)}")
    if failed:
        sys.exit(1)
    print("import-cycles: no import circles in " + ", ".join(crates))


if __name__ == "__main__":
    main()
