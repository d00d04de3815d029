"""Packaging: the conda recipe agrees with pyproject.toml, the wheel carries what the package
needs, and the CLI answers --help, --version and shell completion.

No conda-build is installable here, so the recipe's Jinja is rendered with the few names
conda-build would supply and the result is compared, item by item, with pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DASK_BATCH = str(BIN / "dask-batch")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# pip name -> conda-forge name, where they differ
CONDA_NAME = {"dask": "dask-core", "distributed-ucxx-cu12": "distributed-ucxx"}


def render_recipe(**variables: str) -> dict:
    text = (ROOT / "conda-recipe" / "meta.yaml").read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    # what conda-build defines while rendering; python_min may come from a variant config
    rendered = env.from_string(text).render(PYTHON="$PYTHON", **variables)
    return yaml.safe_load(rendered)


def conda_spec(requirement: str) -> str:
    """pyproject's "dask>=2024.8.0" as conda writes it: "dask-core >=2024.8.0"."""
    req = Requirement(requirement)
    name = CONDA_NAME.get(req.name, req.name)
    return f"{name} {req.specifier}".strip() if req.specifier else name


@pytest.fixture(scope="module")
def recipe() -> dict:
    return render_recipe()


def test_recipe_name_version_and_python(recipe):
    import dask_batch

    assert recipe["package"] == {"name": PROJECT["name"], "version": PROJECT["version"]}
    assert dask_batch.__version__ == PROJECT["version"]
    assert recipe["build"]["noarch"] == "python"
    python_min = PROJECT["requires-python"].removeprefix(">=")
    assert f"python >={python_min}" in recipe["requirements"]["run"]
    assert f"python {python_min}" in recipe["requirements"]["host"]
    # a variant config's python_min (conda-forge's pinning) wins over the default
    other = render_recipe(python_min="3.12")
    assert "python >=3.12" in other["requirements"]["run"]


def test_recipe_run_dependencies_are_pyprojects(recipe):
    run = [r for r in recipe["requirements"]["run"] if not r.startswith("python ")]
    assert run == [conda_spec(r) for r in PROJECT["dependencies"]]


def test_recipe_lists_every_extra(recipe):
    extras = {k: v for k, v in PROJECT["optional-dependencies"].items() if k != "test"}
    listed = recipe["extra"]["pip-extras"]
    assert set(listed) == set(extras)
    for name, requirements in extras.items():
        assert listed[name] == [conda_spec(r) for r in requirements], name
    # every versioned optional package is pinned in run_constrained
    versioned = {conda_spec(r) for reqs in extras.values() for r in reqs
                 if Requirement(r).specifier}
    assert versioned == set(recipe["requirements"]["run_constrained"])


def test_recipe_entry_point_and_build_backend(recipe):
    scripts = [f"{k} = {v}" for k, v in PROJECT["scripts"].items()]
    assert recipe["build"]["entry_points"] == scripts
    backend = PYPROJECT["build-system"]["requires"]
    assert [conda_spec(r) for r in backend] == [h for h in recipe["requirements"]["host"]
                                                if h.startswith("setuptools")]
    assert recipe["about"]["license"] == PROJECT["license"] == "BSD-3-Clause"  # SPDX string
    assert recipe["about"]["license_file"] in PROJECT["license-files"]
    assert recipe["about"]["summary"] == PROJECT["description"]


def test_recipe_test_commands_pass_here(recipe):
    """What `conda build` would run after installing the package, run in this environment."""
    assert recipe["test"]["imports"] == ["dask_batch"]
    commands = recipe["test"]["commands"]
    assert "dask-batch --help" in commands and "dask-batch --version" in commands
    # the other entry points: dask's CLI plugin and the outside clients' comm backend
    assert "dask batch --version" in commands
    assert any("get_backend('dask-batch-tls')" in c for c in commands), commands
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        if command == "pip check":  # the test environment holds more than dask-batch
            continue
        p = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0 and p.stdout, (command, p.stderr)


def test_version():
    p = subprocess.run([DASK_BATCH, "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    assert p.stdout.strip() == f"dask-batch, version {PROJECT['version']}"


def test_dask_cli_plugin_is_dask_batch():
    p = subprocess.run([str(BIN / "dask"), "batch", "--version"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "version" in p.stdout, p.stderr


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F _dask_batch_completion"),
                                          ("zsh", "#compdef dask-batch"),
                                          ("fish", "complete --no-files --command dask-batch")])
def test_shell_completion_script(shell, marker):
    p = subprocess.run([DASK_BATCH], env={**os.environ, "_DASK_BATCH_COMPLETE": f"{shell}_source"},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and marker in p.stdout, p.stdout + p.stderr


def _complete(words: str) -> list[str]:
    parts = words.split(" ")
    env = {**os.environ, "_DASK_BATCH_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(parts) - 1)}
    p = subprocess.run([DASK_BATCH], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [line.split(",", 1)[1] for line in p.stdout.splitlines()]


def test_shell_completion_completes():
    assert _complete("dask-batch su") == ["submit"]
    assert {"run", "info", "submit", "status", "cancel", "script", "lab"} <= set(
        _complete("dask-batch "))
    assert sorted(_complete("dask-batch --sched")) == [
        "--scheduler", "--scheduler-address", "--scheduler-file", "--scheduler-port",
        "--scheduler-rank"]
    assert "slurm" in _complete("dask-batch submit --system ")


def test_completion_works_in_bash():
    """The script, sourced by a real bash, completes `dask-batch su<TAB>`."""
    if not shutil.which("bash"):
        pytest.skip("no bash")
    script = (
        f'eval "$(_DASK_BATCH_COMPLETE=bash_source {DASK_BATCH})"\n'
        'COMP_WORDS=(dask-batch su); COMP_CWORD=1\n'
        f'_dask_batch_completion {DASK_BATCH}\n'
        'echo "${COMPREPLY[@]}"\n'
    )
    p = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert p.stdout.strip() == "submit", p.stdout + p.stderr


def _sources(tmp_path: Path) -> Path:
    """What a source distribution holds, copied to build from (no caches, no tests)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "dask_batch", src / "dask_batch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return src


@pytest.mark.timeout(180)
def test_build_has_config_types_and_entry_points(tmp_path):
    """setuptools builds the package from a copy of the sources (offline, no wheel package):
    the config defaults, py.typed and every module go in; every entry point is declared."""
    src = _sources(tmp_path)
    lib = tmp_path / "lib"
    p = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q",
                        "egg_info", "--egg-base", str(tmp_path), "build_py", "--build-lib",
                        str(lib)], cwd=src, capture_output=True, text=True, timeout=170)
    assert p.returncode == 0, p.stderr
    assert "Deprecat" not in p.stderr and "Warning" not in p.stderr, p.stderr  # clean metadata
    built = {str(f.relative_to(lib)) for f in lib.rglob("*") if f.is_file()}
    sources = {str(f.relative_to(ROOT)) for f in (ROOT / "dask_batch").rglob("*.py")}
    assert sources | {"dask_batch/batch.yaml", "dask_batch/py.typed"} <= built
    info = tmp_path / "dask_batch.egg-info"
    entry_points = (info / "entry_points.txt").read_text()
    assert "[console_scripts]\ndask-batch = dask_batch.cli:main" in entry_points
    assert "[dask_cli]\nbatch = dask_batch.cli:main" in entry_points
    # the scheme of a secure job's scheduler file (a plain Client(scheduler_file=) needs it)
    assert ("[distributed.comm.backends]\ndask-batch-tls = dask_batch.batch_tls:BatchTLSBackend"
            in entry_points)
    pkg_info = (info / "PKG-INFO").read_text()
    assert f"Version: {PROJECT['version']}" in pkg_info
    # the SPDX form (no deprecated license table), with the licence text shipped
    assert "License-Expression: BSD-3-Clause" in pkg_info
    assert "License-File: LICENSE" in pkg_info


@pytest.mark.timeout(180)
def test_wheel_and_sdist_carry_the_licence(tmp_path):
    """The PEP 517 backend builds a wheel and an sdist of a clean copy, without deprecation
    warnings, and both carry LICENSE (the wheel under .dist-info/licenses)."""
    import tarfile
    import zipfile

    src = _sources(tmp_path)
    dist = tmp_path / "dist"
    built = {}
    for kind in ("wheel", "sdist"):  # one process each: setuptools keeps state between them
        code = (f"import sys; from setuptools import build_meta as b; "
                f"print('BUILT', b.build_{kind}(sys.argv[1]))")
        p = subprocess.run([sys.executable, "-W", "always", "-c", code, str(dist)], cwd=src,
                           capture_output=True, text=True, timeout=170)
        assert p.returncode == 0, p.stderr
        assert "Deprecat" not in p.stdout + p.stderr, p.stdout + p.stderr
        built[kind] = next(ln for ln in p.stdout.splitlines() if ln.startswith("BUILT "))[6:]
    wheel, sdist = built["wheel"], built["sdist"]
    names = zipfile.ZipFile(dist / wheel).namelist()
    assert f"dask_batch-{PROJECT['version']}.dist-info/licenses/LICENSE" in names, names
    with tarfile.open(dist / sdist) as t:
        assert f"dask_batch-{PROJECT['version']}/LICENSE" in t.getnames()
        text = t.extractfile(f"dask_batch-{PROJECT['version']}/LICENSE").read().decode()
    assert "Redistribution and use in source and binary forms" in text  # BSD-3-Clause
