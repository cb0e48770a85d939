"""The folder is the marker (tests/conftest.py): each test lives in the folder of what it needs.

Checked statically, by reading the test files' source (nothing is imported or run), with two rules:

1. The control plane is for tests/cluster and tests/realnode only. Outside them no test and no
   fixture asks for `control_plane` or `namespace` (tests/conftest.py's fixtures: as a parameter, in
   `usefixtures` or in `getfixturevalue`), so `-m 'not cluster'` never starts a cluster. And every
   test in tests/cluster reaches `control_plane` through its fixtures, so the folder's `cluster`
   marker deselects no test that could run without one.
2. tests/unit and tests/golden are pure: their modules import none of PROCESS_MODULES (processes,
   threads, sockets, servers), nor a module of this repository (hack, bench, build_jobs,
   tests) whose own source imports one of them, such as hack.cluster or hack.node. One level
   deep only: what those modules import in turn is theirs to answer for. A test that needs any
   of these goes to tests/process.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.factories import ROOT

TESTS = ROOT / "tests"
CONTROL_PLANE_FOLDERS = ("cluster", "realnode")
CONTROL_PLANE_FIXTURES = {"control_plane", "namespace"}
PURE_FOLDERS = ("unit", "golden")
PROCESS_MODULES = {
    "subprocess",
    "multiprocessing",
    "threading",
    "concurrent.futures",
    "socket",
    "socketserver",
    "http.server",
    "http.client",
    "urllib.request",
}
REPO_PACKAGES = {"hack", "bench", "build_jobs", "tests"}


def python_files(folder: Path) -> list[Path]:
    """The Python files of a folder of tests, data folders (fake tools, skeletons) left out."""
    return sorted(
        p for p in folder.rglob("*.py") if not {"fakes", "skeleton", "skeletons"} & set(p.parts)
    )


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def is_fixture(function: ast.FunctionDef) -> bool:
    """Decorated with @pytest.fixture or @pytest.fixture(...)."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def parametrized(function: ast.FunctionDef) -> set[str]:
    """Argument names given by @pytest.mark.parametrize: values, not fixtures."""
    names: set[str] = set()
    for decorator in function.decorator_list:
        if (
            isinstance(decorator, ast.Call)
            and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr == "parametrize"
            and decorator.args
        ):
            first = decorator.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names |= {n.strip() for n in first.value.split(",")}
            elif isinstance(first, ast.Tuple | ast.List):
                names |= {e.value for e in first.elts if isinstance(e, ast.Constant)}
    return names


def functions(tree: ast.Module) -> Iterator[ast.FunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node  # type: ignore[misc]


def requested(function: ast.FunctionDef) -> set[str]:
    """The fixtures a test or fixture asks for by parameter."""
    args = function.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    return names - parametrized(function) - {"self", "cls"}


def named_fixtures(tree: ast.Module) -> set[str]:
    """Fixture names given as strings to usefixtures(...) or request.getfixturevalue(...)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"usefixtures", "getfixturevalue"}
        ):
            names |= {
                a.value
                for a in node.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            }
    return names


def test_only_cluster_and_realnode_tests_use_the_control_plane() -> None:
    misplaced = []
    for path in python_files(TESTS):
        relative = path.relative_to(TESTS)
        if relative.parts[0] in CONTROL_PLANE_FOLDERS or relative == Path("conftest.py"):
            continue  # tests/conftest.py is where the two fixtures are defined
        tree = parse(path)
        for function in functions(tree):
            if function.name.startswith("test") or is_fixture(function):
                for name in sorted(requested(function) & CONTROL_PLANE_FIXTURES):
                    misplaced.append(f"{relative}::{function.name} asks for {name}")
        for name in sorted(named_fixtures(tree) & CONTROL_PLANE_FIXTURES):
            misplaced.append(f"{relative} names the fixture {name}")
    assert not misplaced, "move these to tests/cluster (or tests/realnode):\n" + "\n".join(
        misplaced
    )


def fixture_graph(paths: list[Path]) -> dict[str, set[str]]:
    """Fixture name -> the fixtures it asks for, over the given files."""
    graph: dict[str, set[str]] = {}
    for path in paths:
        for function in functions(parse(path)):
            if is_fixture(function):
                graph.setdefault(function.name, set()).update(requested(function))
    return graph


def reaches(name: str, graph: dict[str, set[str]], seen: set[str]) -> bool:
    """Whether a fixture is control_plane or asks for it, directly or through other fixtures."""
    if name == "control_plane":
        return True
    if name in seen:
        return False
    seen.add(name)
    return any(reaches(n, graph, seen) for n in graph.get(name, ()))


def test_every_cluster_test_needs_the_control_plane() -> None:
    shared = [TESTS / "conftest.py", TESTS / "cluster" / "conftest.py"]
    without = []
    for path in python_files(TESTS / "cluster"):
        if not path.name.startswith("test_"):
            continue
        tree = parse(path)
        graph = fixture_graph([*shared, path])
        for function in functions(tree):
            if function.name.startswith("test"):
                asked = requested(function) | named_fixtures(tree)
                if not any(reaches(name, graph, set()) for name in asked):
                    without.append(f"{path.relative_to(TESTS)}::{function.name}")
    assert not without, (
        "these need no cluster: move them to tests/process (or tests/unit):\n" + "\n".join(without)
    )


def imported(tree: ast.Module) -> set[str]:
    """Every module a file imports, anywhere in it: `from a import b` counts as a and a.b."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def starts_processes(names: set[str]) -> set[str]:
    """Those of the names that are, or are inside, one of PROCESS_MODULES."""
    return {n for n in names if any(n == m or n.startswith(f"{m}.") for m in PROCESS_MODULES)}


def repo_source(module: str) -> Path | None:
    """The file of a module of this repository (hack, bench, build_jobs, tests), if it is one."""
    if module.split(".")[0] not in REPO_PACKAGES:
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_unit_and_golden_tests_start_no_process_thread_or_socket() -> None:
    impure = []
    for folder in PURE_FOLDERS:
        for path in python_files(TESTS / folder):
            names = imported(parse(path))
            for name in sorted(starts_processes(names)):
                impure.append(f"{path.relative_to(TESTS)} imports {name}")
            for name in sorted(names):
                source = repo_source(name)
                if source and source != path:
                    for used in sorted(starts_processes(imported(parse(source)))):
                        impure.append(
                            f"{path.relative_to(TESTS)} imports {name}, which imports {used}"
                        )
    assert not impure, "move these to tests/process:\n" + "\n".join(impure)


def test_the_rules_see_what_they_look_for() -> None:
    """The checks above on small sources, so an empty finding means a
    clean tree, not a blind check."""
    test = ast.parse(
        "import pytest\n"
        "@pytest.fixture\n"
        "def ns(control_plane): ...\n"
        "@pytest.mark.parametrize('namespace', ['a'])\n"
        "def test_a(namespace): ...\n"
        "def test_b(ns, tmp_path): ...\n"
    )
    found = {f.name: requested(f) for f in functions(test)}
    assert found == {"ns": {"control_plane"}, "test_a": set(), "test_b": {"ns", "tmp_path"}}
    graph = {f.name: requested(f) for f in functions(test) if is_fixture(f)}
    assert reaches("ns", graph, set()) and not reaches("tmp_path", graph, set())
    assert named_fixtures(ast.parse("pytest.mark.usefixtures('namespace')")) == {"namespace"}
    names = imported(
        ast.parse("import threading\nfrom hack import node\nfrom http.server import X\n")
    )
    assert starts_processes(names) == {"threading", "http.server", "http.server.X"}
    assert repo_source("hack.node") == ROOT / "hack" / "node.py"
    assert "subprocess" in starts_processes(imported(parse(ROOT.joinpath("hack", "node.py"))))
