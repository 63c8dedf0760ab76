"""Print the module-level import cycles of ``hermes_nb`` (strongly connected components).

Lazy imports inside functions count; ``if TYPE_CHECKING:`` imports count only with
``--with-type-checking``. Used to quote the before/after figures of the layering work; CI's
guard is import-linter's ``acyclic_siblings`` contract in ``pyproject.toml``.

    python scripts/import_cycles.py [--with-type-checking]
"""

from __future__ import annotations

import argparse
import sys

import grimp


def cycles(package: str, *, with_type_checking: bool) -> list[list[str]]:
    """The groups of modules that import each other in a circle, largest first."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=not with_type_checking)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return sorted(found, key=len, reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="hermes_nb")
    parser.add_argument("--with-type-checking", action="store_true")
    args = parser.parse_args()
    groups = cycles(args.package, with_type_checking=args.with_type_checking)
    for group in groups:
        print(f"{len(group)} modules in a circle: {', '.join(group)}")
    print(f"{sum(map(len, groups))} modules in {len(groups)} circle(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
