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
