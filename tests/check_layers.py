#!/usr/bin/env python3
"""The house's rules, checked on the source tree.

Every module lives in src/<layer>/ with its header in include/ipmpi/<layer>/.
A layer may include only the layers below it (the table in src/meson.build):

    base      nothing
    learn     base
    info      base                    (pure: no MPI, no NetCDF)
    parallel  base, info              (MPI, no NetCDF)
    io        base, learn, info       (types only; NetCDF, no MPI)
    app       everything

Also: no module includes itself through a cycle, nothing below app
includes the run, and the README's map of the house (the code block under
"## The house") names every module of each layer and no other. Exits 1
naming every offending include or map entry."""
import os
import re
import sys

ALLOWED = {
    "base": {"base"},
    "learn": {"base", "learn"},
    "info": {"base", "info"},
    "parallel": {"base", "info", "parallel"},
    "io": {"base", "learn", "info", "io"},
    "app": {"base", "learn", "info", "parallel", "io", "app"},
}
FORBIDDEN_SYSTEM = {
    "base": {"mpi.h", "netcdf.h"},
    "learn": {"mpi.h", "netcdf.h"},
    "info": {"mpi.h", "netcdf.h"},
    "parallel": {"netcdf.h"},
    "io": {"mpi.h"},
    "app": set(),
}
LOCAL = re.compile(r'^\s*#\s*include\s+"ipmpi/([a-z]+)/([a-z_0-9]+)\.h"')
SYSTEM = re.compile(r'^\s*#\s*include\s+<([^>]+)>')


def files(root):
    for top in ("src", "include/ipmpi"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in names:
                if name.endswith((".c", ".h")):
                    path = os.path.join(dirpath, name)
                    layer = os.path.basename(dirpath)
                    if layer in ALLOWED:
                        yield path, layer, os.path.splitext(name)[0]


def main(root):
    problems = []
    edges = {}
    for path, layer, module in files(root):
        rel = os.path.relpath(path, root)
        me = f"{layer}/{module}"
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                m = LOCAL.match(line)
                if m:
                    to_layer, to_module = m.groups()
                    if to_layer not in ALLOWED[layer]:
                        problems.append(f"{rel}:{number}: {layer} may not include {to_layer}/{to_module}.h")
                    if to_layer == "app" and to_module == "run" and module not in ("main", "run"):
                        problems.append(f"{rel}:{number}: only main includes the run")
                    target = f"{to_layer}/{to_module}"
                    if target != me:
                        edges.setdefault(me, set()).add(target)
                m = SYSTEM.match(line)
                if m and m.group(1) in FORBIDDEN_SYSTEM[layer]:
                    problems.append(f"{rel}:{number}: {layer} may not include <{m.group(1)}>")
    problems += cycles(edges)
    problems += map_differences(root)
    for p in problems:
        print("FAIL:", p)
    print(f"checked {sum(1 for _ in files(root))} files, {sum(len(v) for v in edges.values())} "
          f"module includes: {len(problems)} problem(s)")
    return 1 if problems else 0


def readme_map(root):
    """{layer: modules} as the README's map lists them: lines opening with
    LAYER/ start a layer, the last column (after a run of spaces) lists its
    modules, words in parentheses are commentary."""
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"^## The house.*?^```\n(.*?)^```", text, re.S | re.M)
    listed, layer = {}, None
    for line in block.group(1).splitlines() if block else ():
        m = re.match(r"([a-z]+)/", line)
        if m:
            layer = m.group(1)
        columns = re.split(r"\s{2,}", line.strip())
        if layer and len(columns) > 1:
            names = re.sub(r"\([^)]*\)", "", columns[-1])
            listed.setdefault(layer, set()).update(re.findall(r"[a-z_]+", names))
    return listed


def map_differences(root):
    actual = {}
    for _, layer, module in files(root):
        actual.setdefault(layer, set()).add(module)
    listed = readme_map(root)
    if not listed:
        return ["README.md: no map of the house (a code block under '## The house')"]
    problems = []
    for layer in sorted(set(actual) | set(listed)):
        for module in sorted(actual.get(layer, set()) - listed.get(layer, set())):
            problems.append(f"README.md: the map does not list {layer}/{module}")
        for module in sorted(listed.get(layer, set()) - actual.get(layer, set())):
            problems.append(f"README.md: the map lists {layer}/{module}, which does not exist")
    return problems


def cycles(edges):
    """Every include cycle among modules, once each."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append("include cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
