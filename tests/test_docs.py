"""The documentation says what the code does.

* docs/configuration.md is exactly what scripts/config-reference.py makes from batch.yaml;
* every link between the Markdown files resolves, anchors included;
* every job script and example the docs name exists and is run by a test;
* the quick start runs as written: its files and commands (marked with ``<!-- test: ... -->``
  comments, invisible when rendered) under mpiexec here, and its sbatch on the real Slurm;
* the migration tables cover every argument and flag of dask-mpi, and every dask-batch flag
  they name exists (and every one they call unsupported does not);
* the error messages quoted in troubleshooting.md are the code's.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import MPIEXEC, ROOT, job_env, require, run_job

DOCS = ROOT / "docs"
MARKDOWN = sorted(DOCS.glob("*.md")) + [ROOT / "README.md", ROOT / "launchers" / "README.md"]
QUICKSTART = DOCS / "quickstart.md"


# ---------------------------------------------------------------- Markdown helpers


def fenced_blocks(text: str) -> list[tuple[str | None, str]]:
    """(the ``<!-- test: ... -->`` marker on the line before, or None; the block's text)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            marker = None
            if i and (m := re.fullmatch(r"<!-- test: (.+) -->", lines[i - 1].strip())):
                marker = m.group(1)
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            out.append((marker, "\n".join(lines[i + 1:j])))
            i = j
        i += 1
    return out


def prose(text: str) -> str:
    """The text without fenced blocks and inline code (links inside code are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def marked(marker: str) -> str:
    blocks = [b for m, b in fenced_blocks(QUICKSTART.read_text()) if m == marker]
    assert len(blocks) == 1, f"quickstart.md: expected one block marked {marker!r}"
    return blocks[0]


# ---------------------------------------------------------------- generated and linked


def test_configuration_reference_is_generated_from_batch_yaml():
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "config-reference.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_every_setting_is_one_field_its_flag_default_and_yaml_key_come_from():
    """settings.py is the one source: each keyed field's default is batch.yaml's value (what
    resolve() gives with no config), and each flag of the cluster commands is built from it."""
    from dataclasses import fields

    import click

    from dask_batch.cli import main
    from dask_batch.settings import KEYS, Settings, check, resolve

    assert resolve() == check(Settings())
    params = {p.name: p for p in main.params} | {p.name: p for p in main.commands["run"].params}
    flagged = {f.name: f for f in fields(Settings) if f.metadata.get("flag")}
    for name, f in flagged.items():
        p = params[name]
        assert isinstance(p, click.Option) and p.default is None, name
        assert p.help == f.metadata["help"], name
        assert f.metadata["flag"].split("/")[0] in p.opts, (name, p.opts)
    assert {"scheduler_file", "nanny", "exclusive_workers", "client_on_scheduler"} <= set(flagged)
    assert "worker.nanny" == KEYS["nanny"] and "scheduler" not in KEYS  # no config key


def test_configuration_reference_lists_every_key():
    import yaml

    text = (DOCS / "configuration.md").read_text()

    def leaves(d: dict, prefix: str) -> list[str]:
        out = []
        for k, v in d.items():
            if isinstance(v, dict) and v and k != "pools":
                out += leaves(v, f"{prefix}{k}.")
            else:
                out.append(f"{prefix}{k}")
        return out

    data = yaml.safe_load((ROOT / "dask_batch" / "batch.yaml").read_text())
    for key in leaves(data["batch"], ""):
        env = "DASK_BATCH__" + key.upper().replace("-", "_").replace(".", "__")
        assert f"`{env}`" in text, f"batch.{key} missing from docs/configuration.md"


def test_links_resolve():
    bad = []
    for path in MARKDOWN:
        for target in re.findall(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)", prose(path.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                bad.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not bad, "\n".join(bad)


def test_templates_and_examples_named_in_the_docs_exist_and_are_tested():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    named = set()
    for path in MARKDOWN:
        named |= set(re.findall(r"\b((?:launchers|examples)/[\w.-]+\.(?:py|sh|sbatch|qsub|bsub))",
                                path.read_text()))
    assert named, "the docs name no templates or examples?"
    for rel in sorted(named):
        assert (ROOT / rel).exists(), f"the docs name {rel}, which does not exist"
    shipped = {f"launchers/{p.name}" for p in (ROOT / "launchers").iterdir()
               if p.name != "README.md"} | {f"examples/{p.name}" for p in
                                            (ROOT / "examples").glob("*.py")}
    for rel in sorted(shipped):
        name = rel.split("/")[1]
        assert f'"{name}"' in tests, f"{rel} is not run by any test"


# ---------------------------------------------------------------- the quick start, as written


def _workdir(tmp_path: Path) -> Path:
    for name in ("examples", "launchers"):
        (tmp_path / name).symlink_to(ROOT / name)
    for marker, block in fenced_blocks(QUICKSTART.read_text()):
        if marker and marker.startswith("file "):
            (tmp_path / marker.split(" ", 1)[1]).write_text(block + "\n")
    return tmp_path


@pytest.mark.mpi
@pytest.mark.timeout(200)
@pytest.mark.parametrize("name", ["hello", "analysis"])
def test_quickstart_commands_run_as_written(tmp_path, name):
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC} (pip install 'dask-batch[mpich]')")
    cwd = _workdir(tmp_path)
    expected = marked(f"output {name}").strip()
    for command in marked(f"run {name}").splitlines():
        job = run_job(["bash", "-c", command], cwd=cwd, timeout=150)
        assert job.returncode == 0, job
        assert job.stdout.strip() == expected, job


@pytest.mark.slurm
@pytest.mark.timeout(200)
def test_quickstart_sbatch_on_the_real_slurm(tmp_path):
    """The quick start's Slurm commands, with PYTHON pointing at this environment."""
    from clusters import PYTHON, Slurm, slurm_env, slurm_up

    require(slurm_up(), "single-node Slurm is not running (bash ci/clusters/start-slurm.sh)")
    cwd = _workdir(tmp_path)
    tag = uuid.uuid4().hex
    jobs = Slurm(slurm_env(tag))
    script = marked("slurm analysis").replace("~/venvs/dask/bin/python", PYTHON)
    p = subprocess.run(["bash", "-c", script], env=jobs.env, cwd=cwd, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    job_id = re.fullmatch(r"Submitted batch job (\d+)", p.stdout.strip()).group(1)
    jobs.ids.append(job_id)
    try:
        state, code, _ = jobs.wait(job_id, timeout=170)
    finally:
        jobs.cancel_all()
    out = (cwd / f"dask-batch-{job_id}.out").read_text()
    assert (state, code) == ("COMPLETED", 0), out
    assert marked("output analysis").strip() in out.splitlines(), out
    assert "4/4 workers joined" in out, out


def test_quickstart_completion_lines_install_completion():
    lines = [ln for ln in QUICKSTART.read_text().splitlines() if "_DASK_BATCH_COMPLETE=" in ln]
    assert {"bash", "zsh", "fish"} == {re.search(r"=(\w+)_source", ln).group(1) for ln in lines}
    bash = next(ln for ln in lines if "bash_source" in ln).split("#")[0].strip()
    env = job_env("completion")
    p = subprocess.run(["bash", "--norc", "-c", f"{bash}\ncomplete -p dask-batch"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert "-F _dask_batch_completion dask-batch" in p.stdout, p.stdout + p.stderr


# ---------------------------------------------------------------- migration tables


def table_rows(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {header}"))
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", ln.strip())[1:-1]])
    return rows


def flags_in(cell: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", cell))


def cli_options(command) -> set[str]:
    return {o for p in command.params for o in [*p.opts, *p.secondary_opts]}


MIGRATION = (DOCS / "migration.md").read_text()


def test_migration_covers_every_dask_mpi_initialize_argument():
    dask_mpi = pytest.importorskip("dask_mpi")
    import dask_batch

    rows = table_rows(MIGRATION, "`dask_mpi.initialize(...)`")
    documented = {}
    for first, _ in rows:
        name, _, default = first.strip("`").partition("=")
        documented[name] = default
    theirs = inspect.signature(dask_mpi.initialize).parameters
    ours = inspect.signature(dask_batch.initialize).parameters
    assert set(documented) == set(theirs)
    for name, p in theirs.items():
        assert documented[name] == repr(p.default).replace("'", '"'), name
        assert name in ours and ours[name].default == p.default, name


def test_migration_covers_every_dask_mpi_flag_and_names_real_ones():
    pytest.importorskip("dask_mpi")
    from dask_mpi.cli import main as dask_mpi_main

    from dask_batch.cli import main

    rows = table_rows(MIGRATION, "`dask-mpi`")
    ours = cli_options(main)
    theirs = set()
    for p in dask_mpi_main.params:
        theirs |= set(p.opts + p.secondary_opts) if p.opts[0].startswith("-") else {p.name.upper()}
    covered = set()
    for first, second in rows:
        covered |= flags_in(first) | set(re.findall(r"\b[A-Z_]{6,}\b", first))
        if second.startswith("not supported"):
            assert not flags_in(first) & ours, f"{first} is supported now: update migration.md"
            continue
        if second.startswith("same"):
            assert flags_in(first) <= ours, first
        assert flags_in(second) <= ours, second
    assert covered == theirs


def test_migration_jobqueue_rows_name_real_options():
    from dask_batch.cli import main
    from dask_batch.settings import Settings

    submit = cli_options(main.commands["submit"])
    rows = table_rows(MIGRATION, "dask-jobqueue")
    for _, ours in rows:
        assert flags_in(ours) <= submit, ours
    systems = next(c for c in main.commands["submit"].params if c.name == "system").type.choices
    first = next(r for r in rows if "SLURMCluster" in r[0])
    assert set(re.findall(r"`([a-z]+)`", first[1])) == set(systems)
    runner = table_rows(MIGRATION, "`SLURMRunner(...)`")
    fields = set(Settings.__dataclass_fields__)
    for _, ours in runner:
        for name in re.findall(r"`(\w+)(?:=|`)", ours):
            if name != "BatchRunner":
                assert name in fields, name


# ---------------------------------------------------------------- troubleshooting


MESSAGES = [  # quoted in troubleshooting.md; each must be in the code, in one literal
    "MPI sees 1 process but", "for srun use --mpi=pmi2 (MPICH) or --mpi=pmix (Open MPI)",
    "MPI_Init did not return within", "(did a rank die before it?)",
    "but these roles need", "scheduler, client and one worker",
    "no interface named", "the client cannot reach the scheduler",
    "protocol 'tcp' is not encrypted: use 'tls', or --insecure",
    "it has no TLS in distributed, so add --insecure",
    "no scheduler file for this job at", "not to this job", "it does not exist",
    "it is older than this job (stale)", "refuses connections (stale)",
    "is writable by others", "refusing it; run 'chmod 600", "belongs to another user",
    "grace over", "forcing exit after", "died; continuing with the others",
    "the client did not connect within", "did the client rank crash before Client()?",
    "no dask-batch credentials for", "cannot read the credentials file",
    "does not exist: start the job",
]


def test_troubleshooting_quotes_the_codes_messages():
    doc = (DOCS / "troubleshooting.md").read_text().replace("\n", " ")
    source = "\n".join(p.read_text() for p in (ROOT / "dask_batch").rglob("*.py"))
    for message in MESSAGES:
        assert message in doc, f"troubleshooting.md does not quote {message!r}"
        assert message in source, f"the code no longer says {message!r}: update the docs"



def test_how_it_works_map_is_the_import_contract_and_covers_every_module():
    """docs/how-it-works.md's layer table lists, row by row, the layers of pyproject.toml's
    import contract (top to bottom), and every module of the package is in one row."""
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        contracts = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers" and "containers" not in c)
    want = [{m.strip().removeprefix("dask_batch.") for m in layer.split("|")}
            for layer in layers["layers"]]
    text = (ROOT / "docs" / "how-it-works.md").read_text()
    table = text[text.index("| layer | modules |"):].split("\n\n")[0].splitlines()[2:]
    rows = [{m.removesuffix(".py").removesuffix("/") for m in
             re.findall(r"`([\w/]+(?:\.py|/))`", row.split("|")[2])} for row in table]
    assert rows == want, (rows, want)
    listed = set().union(*rows)
    package = ROOT / "dask_batch"
    modules = {p.stem if p.parent == package else p.parent.relative_to(package).parts[0]
               for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    modules -= {"__init__", "_orphan_guard"}  # the package itself; the roles' worker preload
    assert modules <= listed, sorted(modules - listed)
