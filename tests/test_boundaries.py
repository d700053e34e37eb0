"""The house's floors: the core never imports the learning annex (nor torch), and the annex builds on the core.

Every ``import`` statement of every module is read (top level or inside a function: a
lazy import is still a dependency), so the rule holds whichever code path runs.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facegate"

#: the core: ground to floor 3 (ARCHITECTURE.md); what it may not import
CORE = [
    "errors.py",
    "registry.py",
    "images.py",
    "resources.py",
    "paths.py",
    "detection",
    "alignment.py",
    "alignment_openface.py",
    "alignment_arcface.py",
    "models",
    "distances.py",
    "pipeline.py",
    "decisions",
    "verification.py",
    "gallery",
]
FORBIDDEN_IN_CORE = (
    "facegate.learn",
    "torch",
    "facegate.evaluate",
    "facegate.cli",
    "facegate.service",
    "facegate.live",
)


def imported_modules(path: Path) -> set[str]:
    """The absolute names of every module ``path`` imports, anywhere in it."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def core_files() -> list[Path]:
    files = []
    for entry in CORE:
        path = PACKAGE / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return files


def _violates(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def test_the_core_imports_nothing_from_the_annex_the_side_wing_or_torch():
    assert len(core_files()) > 20  # the list above still names the real folders
    found = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in core_files()
        for name in sorted(imported_modules(path))
        if any(_violates(name, forbidden) for forbidden in FORBIDDEN_IN_CORE)
    ]
    assert found == []


def test_the_side_wing_does_not_import_the_annex():
    """Biometric evaluation and the face data sets stand without facegate.learn; the annex uses them."""
    files = sorted((PACKAGE / "evaluate").rglob("*.py")) + sorted((PACKAGE / "datasets").rglob("*.py"))
    found = [
        f"{p.relative_to(PACKAGE)} imports {n}"
        for p in files
        for n in imported_modules(p)
        if _violates(n, "facegate.learn")
    ]
    assert found == []


def test_the_annex_builds_on_the_core():
    """facegate.learn uses the core's metrics, distances and registry instead of its own copies."""
    used = set().union(*(imported_modules(p) for p in (PACKAGE / "learn").rglob("*.py")))
    for core_piece in ("facegate.evaluate.metrics", "facegate.distances", "facegate.models.registry"):
        assert any(_violates(n, core_piece) for n in used), core_piece


def test_relative_imports_are_resolved():
    """The checker itself: a relative import inside facegate.models counts as facegate.models.*."""
    path = PACKAGE / "models" / "__init__.py"
    assert "facegate.models.registry.MODELS" in imported_modules(path)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("facegate", ("torch", "facegate.learn")),
        ("facegate.models", ("torch", "facegate.learn")),
        ("facegate.pipeline", ("torch", "facegate.learn")),
        # the command line builds `facegate train`'s options from the annex's (torch-free) config
        ("facegate.cli", ("torch",)),
    ],
)
def test_importing_loads_neither_torch_nor_the_annex(module, forbidden):
    code = (
        f"import sys, {module}; from facegate.models import MODELS; MODELS.names(); "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith({forbidden!r})); "
        "sys.exit(', '.join(bad) if bad else 0)"
    )
    _python(code)


def test_the_annex_models_are_listed_by_the_core_registry_and_register_themselves():
    code = (
        "import sys; from facegate.models import MODELS; "
        "assert {'omniglot', 'openface-nn4small2'} <= set(MODELS.names()); "
        "assert 'facegate.learn.models.omniglot' not in sys.modules; "
        "factory = MODELS.get('omniglot'); "
        "assert factory.__module__ == 'facegate.learn.models.omniglot', factory.__module__; "
        "assert 'torch' not in sys.modules"
    )
    _python(code)


def _python(code: str) -> None:
    """Run ``code`` in a fresh interpreter (nothing imported yet); it fails by exiting non-zero."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr or result.stdout


def test_the_readme_module_map_names_every_module_and_package_and_no_other():
    """The README's module map matches the folders: each module or package of ``facegate``
    is named in its first column, and each name there exists."""
    readme = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    named: set[str] = set()
    for row in (line for line in readme.splitlines() if line.startswith("| `facegate/")):
        first = row.split("|")[1]
        for token in re.findall(r"`([^`]+)`", first):
            named.add(token.removeprefix("facegate/").rstrip("/"))
    present = {
        p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").is_file())
    }
    assert named == present
