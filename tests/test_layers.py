"""The package's layers (ARCHITECTURE.md, the import-linter contract in pyproject.toml) hold, and the import
graph of tudui has no cycle: a new upward import or circle fails here with the modules it involves."""
import os

import pytest

grimp = pytest.importorskip("grimp")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_linter_contracts_are_kept():
    from importlinter.cli import lint_imports
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)  # the contract lives in pyproject.toml
        assert lint_imports(config_filename="pyproject.toml") == 0, "run `lint-imports` to see the broken import"
    finally:
        os.chdir(cwd)


def _cycle(graph) -> list:
    """One import cycle among tudui's modules (as a list of module names), or [] (iterative DFS)."""
    modules = sorted(graph.modules)
    state, parent = {}, {}
    for root in modules:
        if root in state:
            continue
        stack = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        state[root] = "open"
        while stack:
            node, children = stack[-1]
            for child in children:
                if not child.startswith("tudui"):
                    continue
                if state.get(child) == "open":
                    path, n = [child], node
                    while n != child:
                        path.append(n)
                        n = parent[n]
                    return path[::-1]
                if child not in state:
                    state[child], parent[child] = "open", node
                    stack.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
            else:
                state[node] = "done"
                stack.pop()
    return []


def test_no_import_cycle():
    graph = grimp.build_graph("tudui")
    # a package's __init__ re-exporting its own submodules is not a cycle between concerns: leave those edges out
    for m in list(graph.modules):
        for imported in list(graph.find_modules_directly_imported_by(m)):
            if imported.startswith(m + "."):
                graph.remove_import(importer=m, imported=imported)
    assert _cycle(graph) == []
