"""The layout's arrows that import-linter cannot state (it takes packages only): nothing imports the CLI
modules or the worker entry point. The package arrows are in .importlinter, checked by `make test`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "activities", "core", "definitions", "events", "models", "providers", "scoring", "services",
            "workflows")
ENTRY_POINTS = {"cli", "cli_common", "cli_definitions", "cli_documents", "cli_events", "cli_retraining", "cli_scoring",
                "cli_users", "worker"}


def test_no_package_imports_the_cli_or_the_worker_entry_point():
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                              if n.split(".")[0] in ENTRY_POINTS]
    assert offenders == []


def test_import_contracts_hold():
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_image_holds_every_package_and_module_the_project_installs():
    """The Dockerfile copies its files one by one: a package added to pyproject.toml but not to the image builds
    an image whose worker cannot import it (services/ and events/ were missing)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    modules = {f"{m}.py" for m in project["tool"]["setuptools"]["py-modules"]}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied.update(line.split()[1:-1])
    assert packages - copied == set() and modules - copied == set()
    assert set(PACKAGES) <= packages  # and the layout's packages are the installed ones
