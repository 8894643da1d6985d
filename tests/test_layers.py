"""Dependencies point one way: ``orders`` below, ``workers`` on it, the project ``pizzaq`` on
top. Read from the source, so a new import that runs uphill fails here."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("orders", "workers", "pizzaq")
# What each package may import of the others.
ALLOWED = {"orders": set(), "workers": {"orders"}, "pizzaq": {"orders", "workers"}}


def imported_packages(path: Path) -> set[str]:
    """The packages of ours that a module imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found


def imports_of(package: str) -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT)): imported_packages(path) - {package}
            for path in sorted((ROOT / package).rglob("*.py"))}


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_layers_below_it(package):
    uphill = {module: found - ALLOWED[package] for module, found in imports_of(package).items()}
    assert not {module: found for module, found in uphill.items() if found}, f"{package} imports uphill"


def test_an_import_that_runs_uphill_is_found(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("def later():\n    from pizzaq.dashboard import views\nimport workers.models as w\n")
    assert imported_packages(module) == {"pizzaq", "workers"}


FENCE_HOME = "orders/fence.py"


def fence_copies(path: Path) -> list[int]:
    """Lines of ``path`` that spell the fence condition out themselves: a filter on status,
    worker and attempt together, or SQL testing worker and attempt (as equalities or as
    one comparison of rows)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and _condition(node.func) and {"status", "worker", "attempt"} <= {
                k.arg for k in node.keywords}:
            lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            sql = node.value.replace(" ", "")
            equalities = "worker=" in sql and "attempt=" in sql and ("WHERE" in sql or "AND" in sql)
            compared = "worker" in sql and "attempt" in sql and "ISNOTDISTINCTFROM" in sql.upper()
            if equalities or compared:
                lines.append(node.lineno)
    return lines


def _condition(func) -> bool:
    """Whether a call builds a condition (filter, exclude, get, Q), not a change (update)."""
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("filter", "exclude", "get", "Q")


def test_the_fence_condition_is_written_in_its_home_only():
    sources = [path for package in ("orders", "workers") for path in (ROOT / package).rglob("*.py")
               if "migrations" not in path.parts]
    copies = {str(path.relative_to(ROOT)): found for path in sources if (found := fence_copies(path))}
    assert set(copies) == {FENCE_HOME}, f"the fence is written outside {FENCE_HOME}: {copies}"


def test_a_second_copy_of_the_fence_is_found(tmp_path):
    module = tmp_path / "module.py"
    module.write_text('Order.objects.filter(status="running", worker=w, attempt=a)\n'
                      'SQL = "WHERE o.worker = %s AND o.attempt = v.attempt"\n'
                      'ROWS = "(o.worker, o.attempt) IS NOT DISTINCT FROM (%s, v.attempt)"\n')
    assert fence_copies(module) == [1, 2, 3]


def calls_to(path: Path, name: str) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)]


def test_every_membership_change_goes_through_its_one_home():
    # Taking the membership lock is what a membership change starts with.
    takers = {str(path.relative_to(ROOT)): lines for path in (ROOT / "workers").rglob("*.py")
              if (lines := calls_to(path, "lock_membership"))}
    assert list(takers) == ["workers/membership.py"] and len(takers["workers/membership.py"]) == 1, takers


def attempt_bumps(path: Path) -> list[int]:
    """Lines that bump an order's attempt (what only a claim may do): ``F("attempt") + 1``,
    or SQL that adds to the attempt."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _is_f_of_attempt(node.left):
            lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "attempt+" in node.value.replace(" ", ""):
            lines.append(node.lineno)
    return lines


def _is_f_of_attempt(node) -> bool:
    return (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "F" and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and node.args[0].value == "attempt")


def test_the_claim_rule_has_one_home_that_both_databases_use():
    bumps = {str(path.relative_to(ROOT)): found for package in ("orders", "workers")
             for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts
             if (found := attempt_bumps(path))}
    assert list(bumps) == ["orders/claiming.py"] and len(bumps["orders/claiming.py"]) == 1, bumps
