"""What a responder installs (`pipx install .`) and what Functions deploys: requirements.txt's pins
inside pyproject's ranges, the wheel's files, and `mia` running from a fresh virtual environment that
holds the wheel and the runtime dependencies it declares, nothing else."""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mia.cli import build_parser

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("shared", "mia")
DEVELOPMENT_ONLY = ("simulator", "devtools", "bench", "samples", "tests")


def function_folders() -> list[str]:
    """The packages function_app.py registers a Blueprint from."""
    tree = ast.parse((ROOT / "function_app.py").read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    return sorted(module for module in imported if (ROOT / module / "__init__.py").is_file())


def requirements(lines: list[str]) -> dict[str, Requirement]:
    found: dict[str, Requirement] = {}
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            assert name not in found, f"{name} is listed twice"
            found[name] = requirement
    return found


def pinned() -> dict[str, Requirement]:
    return requirements((ROOT / "requirements.txt").read_text().splitlines())


def ranged() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return requirements(project["dependencies"])


def test_every_pin_lies_inside_the_range_pyproject_gives_the_same_package() -> None:
    pins, ranges = pinned(), ranged()
    assert sorted(pins) == sorted(ranges), (
        "requirements.txt and [project].dependencies list different packages"
    )
    for name, pin in pins.items():
        (exact,) = pin.specifier
        assert exact.operator == "==", f"{pin}: requirements.txt pins exactly"
        assert "*" not in exact.version, f"{pin}: requirements.txt pins exactly"
        wanted = ranges[name]
        assert wanted.specifier.contains(exact.version), f"{pin} is outside pyproject's {wanted}"
        assert (pin.extras, pin.marker) == (wanted.extras, wanted.marker), f"{pin} and {wanted} differ"


def source_files() -> list[str]:
    """The files of this checkout a clone has (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    return sorted(path for path in listed.split("\0") if path and (ROOT / path).is_file())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: setuptools leaves build/ behind in the tree it builds, and files left there
    # by an earlier build would end up in the next wheel.
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    for relative in source_files():
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(work / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (built,) = (work / "dist").glob("*.whl")
    return built


def test_the_wheel_holds_the_library_the_functions_and_the_cli_and_no_development_tooling(
    wheel: Path,
) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    folders = function_folders()
    assert len(folders) == 10, folders
    assert top_level == {*LIBRARY, *folders, "function_app.py"}
    assert not [name for name in names if name.split("/", 1)[0] in DEVELOPMENT_ONLY]
    # Every file of those packages, every subpackage with it, and nothing they do not hold.
    shipped = [
        path
        for path in source_files()
        if path.split("/", 1)[0] in (*LIBRARY, *folders) or path == "function_app.py"
    ]
    missing = sorted(set(shipped) - names)
    assert missing == [], f"left out of the wheel: {missing}"
    subpackages = {path.rsplit("/", 1)[0] for path in shipped if path.endswith("/__init__.py")}
    assert {f"shared/{name}" for name in ("model", "parse", "storage", "reports", "alerts")} <= subpackages


def runtime_distributions() -> Iterator[importlib.metadata.Distribution]:
    """The installed distributions pyproject's dependencies need, transitively (markers applied)."""
    queue = [(requirement, "") for requirement in ranged().values()]
    seen: set[str] = set()
    while queue:
        requirement, extra = queue.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        distribution = importlib.metadata.distribution(requirement.name)
        yield distribution
        for wanted_extra in ("", *requirement.extras):
            queue.extend((Requirement(text), wanted_extra) for text in distribution.requires or [])


def link_runtime_dependencies(folder: Path) -> None:
    """Point `folder` at the installed files of the runtime dependencies, and only those: not the
    project's own editable install, whose finder would import shared/ and mia/ from this checkout."""
    folder.mkdir()
    for distribution in runtime_distributions():
        files = distribution.files
        assert files, f"{distribution.metadata['Name']} has no RECORD"
        for top in {file.parts[0] for file in files if file.parts[0] != ".."}:
            installed = Path(str(distribution.locate_file(top)))
            link = folder / top
            if installed.exists() and not link.exists():
                link.symlink_to(installed, target_is_directory=installed.is_dir())
    assert not list(folder.glob("__editable__*")), "the editable install must not be reachable"


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index"]
    completed = subprocess.run(
        [*install, str(wheel)], capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    site_packages = run(venv, "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    assert site_packages.returncode == 0, site_packages.stderr
    dependencies = home / "dependencies"
    link_runtime_dependencies(dependencies)
    (Path(site_packages.stdout.strip()) / "runtime-dependencies.pth").write_text(f"{dependencies}\n")
    return venv


def run(venv: Path, program: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a program of the venv from an empty folder with no Python settings from this session."""
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(PYTHONNOUSERSITE="1", PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    cwd = venv.parent / "cwd"
    cwd.mkdir(exist_ok=True)
    return subprocess.run(
        [str(bin_dir / program), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli_commands() -> set[str]:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(commands.choices)


def test_mia_help_lists_every_command_from_the_installed_wheel(fresh_venv: Path) -> None:
    completed = run(fresh_venv, "mia", "--help")
    assert completed.returncode == 0, completed.stderr
    commands = cli_commands()
    assert commands >= {"import", "process", "verify", "collect", "report"}
    for command in commands:
        assert f"\n    {command}" in completed.stdout, f"{command} is not in mia --help:\n{completed.stdout}"


@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_mia_has_no_development_commands(fresh_venv: Path, command: str) -> None:
    assert command not in cli_commands()
    completed = run(fresh_venv, "mia", command)
    assert completed.returncode == 2
    assert "invalid choice" in completed.stderr


def test_the_installed_code_comes_from_the_wheel_and_the_simulator_is_not_there(fresh_venv: Path) -> None:
    modules = ["mia.cli", "shared.runtime", "function_app", *function_folders()]
    show = (
        "import importlib, sys; print('\\n'.join(importlib.import_module(m).__file__ for m in sys.argv[1:]))"
    )
    completed = run(fresh_venv, "python", "-c", show, *modules)
    assert completed.returncode == 0, completed.stderr
    for path in completed.stdout.splitlines():
        assert Path(path).is_relative_to(fresh_venv), f"{path} is not the installed wheel's"
    simulator = run(fresh_venv, "python", "-c", "import simulator")
    assert simulator.returncode == 1
    assert "ModuleNotFoundError: No module named 'simulator'" in simulator.stderr


# --- The deployment package -------------------------------------------------------------------

# What a developer's checkout holds besides the source, each of which must stay out of the package:
# the virtual environment `azd restore` creates, named after the service folder plus `_env`
# (getVenvName in https://github.com/Azure/azure-dev/blob/main/cli/azd/pkg/project/framework_service_python.go),
# a setuptools build and its egg-info, azd's environment folder with its .env, and the local tooling.
DEVELOPER_ARTIFACTS = (
    "{folder}_env/pyvenv.cfg",
    "{folder}_env/lib/python3.11/site-packages/requests/__init__.py",
    ".venv/pyvenv.cfg",
    ".venv-infra/pyvenv.cfg",
    "venv/pyvenv.cfg",
    "build/lib/shared/__init__.py",
    "dist/mailitemsaccessed_forensics-0.1.0-py3-none-any.whl",
    "mailitemsaccessed_forensics.egg-info/PKG-INFO",
    "shared/__pycache__/runtime.cpython-311.pyc",
    "node_modules/azurite/package.json",
    ".azure/dev/.env",
    ".azurite/__azurite_db_blob__.json",
    "local.settings.json",
    "out/report.csv",
)
DEPLOYED_FILES = ("function_app.py", "host.json", "requirements.txt")
NEVER_DEPLOYED = (*DEVELOPMENT_ONLY, "docs", "mia", "infra", "node_modules", "build", "dist")


def packaged_files(app: Path) -> list[str]:
    """The files the deployment package of `app` holds. azd (and Core Tools) zip the app folder
    minus what `.funcignore` names, read with gitignore semantics, and a `.funcignore` replaces
    azd's own exclusions of virtual environments and __pycache__ ("Configure service packaging
    file exclusions", https://learn.microsoft.com/en-us/azure/developer/azure-developer-cli/service-packaging-ignore-files).
    git applies gitignore rules by definition: it lists the folder's files `.funcignore` keeps."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "--quiet", str(app)], check=True, timeout=60, env=env)
    listed = subprocess.run(
        ["git", "-C", str(app), "ls-files", "-z", "--others", f"--exclude-from={app / '.funcignore'}"],
        capture_output=True,
        check=True,
        timeout=60,
        env=env,
    ).stdout.decode()
    shutil.rmtree(app / ".git")
    return sorted(path for path in listed.split("\0") if path)


@pytest.fixture(scope="module")
def deployment_package(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The zip azd would upload from a developer's checkout of this repository."""
    app = tmp_path_factory.mktemp("deploy") / "mailitemsaccessed-forensics"
    for relative in source_files():
        target = app / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    for artifact in DEVELOPER_ARTIFACTS:
        target = app / artifact.format(folder=app.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("left behind by development\n")
    package = app.parent / "package.zip"
    with zipfile.ZipFile(package, "w") as archive:
        for relative in packaged_files(app):
            archive.write(app / relative, relative)
    return zipfile.ZipFile(package)


def test_the_deployment_package_holds_the_function_app_and_nothing_of_development(
    deployment_package: zipfile.ZipFile,
) -> None:
    names = deployment_package.namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    folders = function_folders()
    assert len(folders) == 10, folders
    assert top_level == {"shared", *folders, *DEPLOYED_FILES}
    assert not top_level & set(NEVER_DEPLOYED)
    assert not [name for name in names if "__pycache__" in name or name.endswith((".pyc", ".egg-info"))]
    runtime = ("shared", *folders, *DEPLOYED_FILES)
    shipped = [path for path in source_files() if path.split("/", 1)[0] in runtime]
    missing = sorted(set(shipped) - set(names))
    assert missing == [], f"left out of the deployment package: {missing}"


@pytest.mark.parametrize("artifact", DEVELOPER_ARTIFACTS)
def test_no_development_artifact_reaches_the_deployment_package(
    deployment_package: zipfile.ZipFile, artifact: str
) -> None:
    name = artifact.format(folder="mailitemsaccessed-forensics")
    assert name not in deployment_package.namelist()
