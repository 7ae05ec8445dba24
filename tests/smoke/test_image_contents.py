"""What the Docker image holds, checked without a Docker engine: the build context is the tracked
files less what ``.dockerignore`` leaves out (the Dockerfile copies all of it), and every process
``docker-compose.yml`` starts must find its code there.

A new app once ran in ``scripts/run.sh`` and in the suite but was missing from the image, because
the Dockerfile listed the apps one by one: every container then failed at start-up on INSTALLED_APPS.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    # Docker's rules as far as our file uses them: a pattern names a path from the context root (or
    # anything below it), "**/" matches any number of directories.
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], pattern[3:]):
                return True
    return False


def _build_context() -> set[str]:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    patterns = _dockerignore_patterns()
    return {path for path in tracked if not _ignored(path, patterns)}


def _local_apps() -> list[str]:
    return [app for app in settings.INSTALLED_APPS if (ROOT / app / "__init__.py").is_file()]


def test_the_dockerfile_copies_the_whole_context_rather_than_a_list_of_apps():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY \. \./?$", dockerfile, re.MULTILINE)


def test_every_module_of_every_installed_app_is_in_the_build_context():
    context = _build_context()
    missing = [
        path
        for app in [*_local_apps(), "dicomsvc"]
        for path in subprocess.run(
            ["git", "ls-files", app], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if path.endswith((".py", ".html", ".css", ".js")) and path not in context
    ]
    assert missing == []
    assert {"manage.py", "pyproject.toml"} <= context
    assert not any(path.startswith(("tests/", "bench/", ".venv/", "var/")) for path in context)


def test_every_installed_app_is_a_package_that_pip_install_collects():
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    for app in [*_local_apps(), "dicomsvc"]:
        assert any(fnmatch.fnmatchcase(app, pattern) for pattern in include), app


def test_every_module_a_compose_service_starts_is_in_the_build_context():
    compose = (ROOT / "docker-compose.yml").read_text()
    context = _build_context()
    modules = set(re.findall(r"\b([a-z_]+(?:\.[a-z_]+)+):application\b", compose))
    modules |= set(re.findall(r"python:([a-z_]+(?:\.[a-z_]+)+)", (ROOT / "Dockerfile").read_text()))
    assert modules, "no entry point found in docker-compose.yml"
    for module in modules:
        path = module.replace(".", "/") + ".py"
        assert path in context, path
    for app in re.findall(r"celery -A ([a-z_]+)", compose):
        assert f"{app}/celery.py" in context


def test_the_image_gets_ohif_from_a_node_stage_at_the_ohif_dir_it_sets():
    """OHIF is installed by scripts/ohif.sh in a Node stage (it needs npm and node only) and copied to
    the directory the final stage names as OHIF_DIR, so /ohif/ serves in the image."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    node_stage = next(stage for stage in stages if re.match(r"node:\S+ AS ohif\b", stage))
    assert "COPY scripts/ohif.sh scripts/" in node_stage
    (built,) = re.findall(r"RUN OHIF_DIR=(\S+) scripts/ohif\.sh", node_stage)
    final = stages[-1]
    (copied_to,) = re.findall(rf"COPY --from=ohif {re.escape(built)} (\S+)", final)
    assert re.search(rf"\bOHIF_DIR={re.escape(copied_to)}\b", final)
    # scripts/ohif.sh needs nothing of the checkout but itself (the stage copies only it).
    script = (ROOT / "scripts" / "ohif.sh").read_text()
    assert not re.search(r"\b(python|openssl|\.venv|manage\.py)\b", script.split("set -euo pipefail", 1)[1])
