"""The dependency rule of docs/architecture.md, enforced: entry points -> bootstrap -> settings
-> application -> adapters -> core (import-linter's contracts in pyproject.toml), no import
cycle anywhere (imports inside functions count), and a core that reads no environment, loads no
research data and decides nothing by a provider's name.

grimp (under import-linter) reads a package from its folder, and the repository keeps
optimizer/, forecasting/ and adapters/ beside gridshift/ (setup.py maps them under it), so the
installed layout is copied into a temporary folder and analysed there, in a subprocess."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

MAPPED = ("optimizer", "forecasting", "adapters")
CORE = ("optimizer", "forecasting")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed package layout (gridshift/ with the mapped folders inside it)."""
    root = tmp_path_factory.mktemp("layout")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PROJECT_ROOT / "gridshift", root / "gridshift", ignore=ignore)
    for folder in MAPPED:
        shutil.copytree(PROJECT_ROOT / folder, root / "gridshift" / folder, ignore=ignore)
    return root


def _run(layout: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=layout, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(layout), "PATH": "/usr/bin:/bin"})


def test_import_contracts_hold(layout: Path) -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = _run(layout, str(lint_imports), str(PROJECT_ROOT / "pyproject.toml"), "--no-cache")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


CYCLES = textwrap.dedent("""
    import sys
    import grimp

    graph = grimp.build_graph("gridshift", cache_dir=None)
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        # Tarjan's strongly connected components, iteratively (deep import chains).
        work = [(node, iter(sorted(graph.find_modules_directly_imported_by(node))))]
        index[node] = low[node] = counter[0]; counter[0] += 1
        stack.append(node); on_stack.add(node)
        while work:
            current, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]; counter[0] += 1
                    stack.append(child); on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(
                        child)))))
                elif child in on_stack:
                    low[current] = min(low[current], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[current])
            if low[current] == index[current]:
                component = []
                while True:
                    member = stack.pop(); on_stack.discard(member); component.append(member)
                    if member == current:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    for component in cycles:
        print(" <-> ".join(component))
    print(f"{len(graph.modules)} modules")
""")


def test_no_import_cycle_anywhere(layout: Path) -> None:
    """Every module of gridshift, function-level imports included: no two modules reach each
    other (the old carbon_report <-> plans, cli <-> nightly and config <-> forecasts cycles
    hid behind imports inside functions)."""
    done = _run(layout, sys.executable, "-c", CYCLES)
    assert done.returncode == 0, done.stderr
    *cycles, count = done.stdout.strip().splitlines()
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
    assert int(count.split()[0]) > 100   # the whole package was analysed


def _core_files() -> list[Path]:
    return sorted(p for folder in CORE for p in (PROJECT_ROOT / folder).rglob("*.py"))


def _strings_outside_docstrings(tree: ast.AST) -> list[ast.Constant]:
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docstrings]


def test_the_core_reads_no_environment_and_no_research_data() -> None:
    offences = []
    for path in _core_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                offences.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} os.{node.attr}")
            if isinstance(node, ast.Name) and node.id == "zipfile":
                offences.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} zipfile")
        for constant in _strings_outside_docstrings(tree):
            if "shared" in constant.value and "data" in constant.value:
                offences.append(f"{path.relative_to(PROJECT_ROOT)}:{constant.lineno} "
                                f"{constant.value!r}")
    assert not offences, offences


PROVIDER_NAMES = ("watttime", "electricitymaps", "ukci", "uk-carbon-intensity", "open-meteo",
                  "embedded-typical-profile")


def test_the_core_decides_nothing_by_a_provider_name() -> None:
    """Which error model, blend or accounting applies follows from what a series says it is
    (signal, typical_profile), which its source sets from the provider registry: no comparison
    or membership test in the core involves a provider's name."""
    offences = []
    for path in _core_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            operands = []
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("startswith", "endswith", "find", "index", "count"):
                operands = list(node.args)
            for operand in operands:
                if isinstance(operand, ast.Constant) and isinstance(operand.value, str) and \
                        any(name in operand.value.lower() for name in PROVIDER_NAMES):
                    offences.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} "
                                    f"{operand.value!r}")
    assert not offences, offences


def test_no_code_points_at_a_design_file_outside_the_repository() -> None:
    """Code refers to docs/architecture.md or the README, never to a DESIGN.md it lacks."""
    offences = [str(p.relative_to(PROJECT_ROOT)) for folder in (*MAPPED, "gridshift", "bench")
                for p in (PROJECT_ROOT / folder).rglob("*.py")
                if "DESIGN.md" in p.read_text(encoding="utf-8")]
    assert not offences, offences
    assert (PROJECT_ROOT / "docs" / "architecture.md").is_file()
