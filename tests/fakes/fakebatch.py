#!/usr/bin/env python3
"""Strict fakes of the PBS Pro, LSF, HTCondor, OAR and Moab commands (stdlib only).

Linked under the real command names (qsub, qstat, qdel, bsub, bjobs, bkill, condor_submit,
condor_q, condor_history, condor_rm, oarsub, oarstat, oardel, msub, showq, canceljob) into a
directory put first on PATH; FAKE_BATCH_SYSTEM says which system ``qsub`` is, FAKE_BATCH_DIR
holds the state (a locked JSON file). Every argument and directive is checked against the
syntax in shared/reference/batch-systems.md; anything else is rejected the way the real command
would (message on stderr, non-zero exit). Answers use the real output formats. Accepted jobs
run locally, one process group per array element, with the variables that system sets.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

DIR = os.environ["FAKE_BATCH_DIR"]
SYSTEM = os.environ.get("FAKE_BATCH_SYSTEM", "")
CMD = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]
# HTCondor's commands all take -name SCHEDD and -pool HOST (which schedd, which pool) before
# their own arguments: submit_command_extra / cancel_command_extra of dask-jobqueue
SCHEDD: list[str] = []
while CMD.startswith("condor_") and len(ARGS) >= 2 and ARGS[0] in ("-name", "-pool"):
    SCHEDD += ARGS[:2]
    ARGS = ARGS[2:]

NAME = r"[A-Za-z][\w.-]{0,63}"
HMS = r"\d+:\d{2}:\d{2}"
ANY = r"\S.*"
# one table: directive flag -> regex of its value, per system (None = no value)
DIRECTIVES: dict[str, dict[str, str | None]] = {
    "pbs": {
        "-N": NAME, "-q": ANY, "-A": ANY, "-o": ANY, "-e": ANY, "-J": r"\d+-\d+(:\d+)?(%\d+)?",
        "-l": rf"select=1:ncpus=\d+(:mem=\d+([kmgtp]?[bw])?)?(:ngpus=\d+)?|walltime={HMS}",
    },
    "lsf": {
        "-J": rf"{NAME}(\[\d+-\d+(:\d+)?\](%\d+)?)?", "-n": r"\d+", "-W": r"(\d+:)?\d+",
        "-o": ANY, "-e": ANY, "-R": r"span\[hosts=1\]", "-M": r"\d+(KB|MB|GB|TB)?",
        "-gpu": r"num=\d+(/task|/host)?(:mode=\w+)?", "-q": ANY, "-P": ANY,
    },
    "oar": {
        "-n": NAME, "-l": r"/nodes=1(/gpu=\d+)?/core=\d+,walltime=\d+(:\d+(:\d+)?)?",
        "-O": ANY, "-E": ANY, "-q": ANY, "--project": ANY, "--array": r"[1-9]\d*",
    },
    "moab": {
        "-N": NAME, "-o": ANY, "-e": ANY, "-q": ANY, "-A": ANY,
        "-l": rf"((nodes=1:ppn=\d+(:gpus=\d+)?|walltime={HMS}|mem=\d+(b|kb|mb|gb|w|kw|mw|gw))"
              rf",?)+",
        "-t": rf"{NAME}\[\d+-\d+\]",
    },
}
PREFIX = {"pbs": "#PBS", "lsf": "#BSUB", "oar": "#OAR", "moab": "#PBS"}
CONDOR_KEYS = {"universe", "executable", "arguments", "batch_name", "getenv", "request_cpus",
               "request_memory", "request_gpus", "request_disk", "output", "error", "log",
               "periodic_remove", "accounting_group", "requirements", "environment"}


def fail(msg: str, code: int = 1) -> None:
    sys.stderr.write(msg + "\n")
    sys.exit(code)


# ---------------------------------------------------------------- state


class State:
    def __enter__(self) -> dict:
        os.makedirs(os.path.join(DIR, "logs"), exist_ok=True)
        self.fd = os.open(os.path.join(DIR, "state.lock"), os.O_CREAT | os.O_RDWR)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            with open(os.path.join(DIR, "state.json")) as f:
                self.data = json.load(f)
        except FileNotFoundError:
            self.data = {"next": 100, "jobs": {}, "calls": []}
        self.data["calls"].append([CMD, *SCHEDD, *ARGS])
        return self.data

    def __exit__(self, *exc: object) -> None:
        with open(os.path.join(DIR, "state.json.tmp"), "w") as f:
            json.dump(self.data, f)
        os.replace(os.path.join(DIR, "state.json.tmp"), os.path.join(DIR, "state.json"))
        os.close(self.fd)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def element_state(el: dict) -> tuple[str, int | None]:
    """("queued" | "running" | "done" | "cancelled", exit code)."""
    if el.get("cancelled"):
        return "cancelled", 271
    if alive(el["pid"]):
        return "running", None
    try:
        with open(el["ec"]) as f:
            return "done", int(f.read().strip() or 1)
    except (OSError, ValueError):
        return "done", 1  # killed before it could write its code


def launch(argv: list[str], env_extra: dict[str, str], key: str, clean_env: bool = False) -> dict:
    ec = os.path.join(DIR, "logs", f"{key}.ec")
    env = ({k: os.environ[k] for k in ("HOME", "DASK_BATCH_TEST_TAG") if k in os.environ}
           | {"PATH": "/usr/bin:/bin"}) if clean_env else dict(os.environ)
    for k in list(env):
        if k.startswith(("FAKE_BATCH", "SLURM_", "PMI_")):
            env.pop(k)
    env.update(env_extra)
    log = open(os.path.join(DIR, "logs", f"{key}.log"), "w")
    proc = subprocess.Popen(["/bin/bash", "-c", '"$@"; echo $? > "$0"', ec, *argv], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=DIR)
    return {"pid": proc.pid, "ec": ec}


def directives(text: str, system: str) -> list[tuple[str, str | None]]:
    """Parse and check the header; real systems stop at the first command line."""
    out = []
    for line in text.splitlines()[1:]:
        if not line.strip() or (line.startswith("#") and not line.startswith(PREFIX[system])):
            continue
        if not line.startswith(PREFIX[system]):
            break
        words = shlex.split(line[len(PREFIX[system]):])
        if not words or words[0] not in DIRECTIVES[system]:
            fail(f"{CMD}: invalid option in directive: {line!r}", 2)
        pattern = DIRECTIVES[system][words[0]]
        value = " ".join(words[1:]) if len(words) > 1 else None
        if pattern is not None and (value is None or not re.fullmatch(pattern, value)):
            fail(f"{CMD}: illegal {words[0]} value {value!r}", 2)
        out.append((words[0], value))
    return out


def read_script(path: str) -> str:
    if not os.path.isfile(path):
        fail(f"{CMD}: script file cannot be loaded - No such file or directory", 2)
    with open(path) as f:
        text = f.read()
    if not text.startswith("#!"):
        fail(f"{CMD}: script has no interpreter line", 2)
    return text


def array_range(value: str) -> list[int]:
    m = re.search(r"(\d+)-(\d+)", value)
    assert m
    a, b = int(m.group(1)), int(m.group(2))
    if b < a:
        fail(f"{CMD}: illegal array range {value!r}", 2)
    return list(range(a, b + 1))


def new_id(st: dict) -> int:
    st["next"] += 1
    return st["next"]


# ---------------------------------------------------------------- submit


def submit_shell(system: str, script: str, text: str) -> None:
    dirs = directives(text, system)
    flags = dict(dirs)
    for must in {"pbs": ["-N", "-l"], "lsf": ["-J", "-W", "-n"], "oar": ["-l", "-n"],
                 "moab": ["-N", "-l"]}[system]:
        if must not in flags:
            fail(f"{CMD}: test fake: directive {must} missing", 2)
    array_flag = {"pbs": "-J", "oar": "--array", "moab": "-t"}.get(system)
    indices: list[int] | None = None
    if system == "lsf" and "[" in flags["-J"]:
        indices = array_range(flags["-J"])
    elif array_flag and array_flag in flags:
        v = flags[array_flag] or ""
        indices = list(range(1, int(v) + 1)) if system == "oar" else array_range(v)
    with State() as st:
        jid = new_id(st)
        job: dict = {"system": system, "elements": {}, "array": indices is not None}
        lines = []
        for i in indices if indices is not None else [None]:
            if system == "pbs":
                key = f"{jid}[{i}]" if i is not None else str(jid)
                env = {"PBS_JOBID": f"{key}.fakeserver"}
                if i is not None:
                    env |= {"PBS_ARRAY_INDEX": str(i), "PBS_ARRAY_ID": f"{jid}[].fakeserver"}
            elif system == "lsf":
                key = f"{jid}[{i}]" if i is not None else str(jid)
                env = {"LSB_JOBID": str(jid), "LSB_JOBINDEX": str(i or 0)}
            elif system == "moab":
                key = f"{jid}[{i}]" if i is not None else str(jid)
                env = {"MOAB_JOBID": str(jid), "PBS_JOBID": f"{key}.fakeserver"}
                if i is not None:
                    env |= {"MOAB_JOBARRAYINDEX": str(i), "PBS_ARRAYID": str(i)}
            else:  # oar: every subjob has its own id
                sub = jid if i in (None, 1) else new_id(st)
                key = str(sub)
                env = {"OAR_JOB_ID": key, "OAR_JOBID": key}
                if i is not None:
                    env |= {"OAR_ARRAY_ID": str(jid), "OAR_ARRAYID": str(jid),
                            "OAR_ARRAY_INDEX": str(i), "OAR_ARRAYINDEX": str(i)}
                lines.append(f"OAR_JOB_ID={key}")
            job["elements"][key] = launch(["/bin/bash", script], env, key)
            if i is not None:
                job["elements"][key]["index"] = i
        st["jobs"][str(jid)] = job
    if system == "pbs":
        print(f"{jid}[].fakeserver" if indices else f"{jid}.fakeserver")
    elif system == "lsf":
        print(f"Job <{jid}> is submitted to queue <{flags.get('-q') or 'normal'}>.")
    elif system == "moab":
        print(f"\n{jid}\n")
    else:
        print("[ADMISSION RULE] Set default walltime to 7200.")
        print("\n".join(lines))
        if indices:
            print(f"OAR_ARRAY_ID={jid}")


def condor_submit(path: str) -> None:
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    if not lines or not re.fullmatch(r"queue( [1-9]\d*)?", lines[-1], re.I):
        fail("ERROR: the last line must be 'queue [N]'", 1)
    n = int((lines[-1].split() + ["1"])[1])
    desc: dict[str, str] = {}
    for line in lines[:-1]:
        m = re.fullmatch(r"([A-Za-z_+.][\w.]*)\s*=\s*(.*)", line)
        if not m or m.group(1).lower() not in CONDOR_KEYS:
            fail(f"ERROR: on Line {line!r}: unknown or bad submit command", 1)
        desc[m.group(1).lower()] = m.group(2)
    for key in ("executable", "universe", "request_cpus"):
        if key not in desc:
            fail(f"ERROR: test fake: {key} missing", 1)
    if desc["universe"] != "vanilla" or not os.access(desc["executable"], os.X_OK):
        fail(f"ERROR: Executable file {desc['executable']} does not exist", 1)
    args = parse_condor_args(desc.get("arguments", '""'))
    with State() as st:
        cid = new_id(st)
        job: dict = {"system": "htcondor", "elements": {}, "array": True, "schedd": SCHEDD}
        for proc in range(n):
            argv = [a.replace("$(ClusterId)", str(cid)).replace("$(ProcId)", str(proc))
                    for a in [desc["executable"], *args]]
            env = {"BATCH_SYSTEM": "HTCondor", "_CONDOR_SCRATCH_DIR": DIR,
                   "_CONDOR_SLOT": f"slot1_{proc}"}
            key = f"{cid}.{proc}"
            job["elements"][key] = launch(argv, env, key,
                                          clean_env=desc.get("getenv") == "false")
        st["jobs"][str(cid)] = job
    print("Submitting job(s)" + "." * n)
    print(f"{n} job(s) submitted to cluster {cid}.")


def parse_condor_args(value: str) -> list[str]:
    """The new syntax only: "…" around all, '…' around words with spaces, quotes doubled."""
    if not (value.startswith('"') and value.endswith('"')):
        fail("ERROR: arguments must use the new syntax (double quotes around)", 1)
    body, words, i = value[1:-1], [], 0
    while i < len(body):
        if body[i] == " ":
            i += 1
            continue
        word = ""
        while i < len(body) and body[i] != " ":
            if body[i] == "'":
                i += 1
                while True:
                    if i >= len(body):
                        fail("ERROR: unbalanced single quote in arguments", 1)
                    if body[i] == "'" and body[i + 1:i + 2] == "'":
                        word, i = word + "'", i + 2
                    elif body[i] == "'":
                        i += 1
                        break
                    elif body[i] == '"' and body[i + 1:i + 2] == '"':
                        word, i = word + '"', i + 2
                    elif body[i] == '"':
                        fail("ERROR: lone double quote in arguments", 1)
                    else:
                        word, i = word + body[i], i + 1
            else:
                word, i = word + body[i], i + 1
        words.append(word)
    return words


# ---------------------------------------------------------------- status and cancel


def find(st: dict, ident: str) -> list[tuple[str, dict]]:
    """Elements matching a job id as the system writes it (whole job or one element)."""
    ident = ident.split(".fakeserver")[0]
    base = re.match(r"\d+", ident)
    out = []
    for jid, job in st["jobs"].items():
        if job.get("schedd", []) != SCHEDD:  # another schedd's job: not seen from here
            continue
        for key, el in job["elements"].items():
            if ident in (key, jid, f"{jid}[]") or (job["system"] == "oar" and ident == key):
                out.append((key, el))
    if not out and base is None:
        fail(f"{CMD}: illegal job id {ident!r}", 2)
    return out


def pbs_qstat() -> None:
    if ARGS[:5] != ["-f", "-F", "json", "-x", "-t"] or not ARGS[5:]:
        fail(f"qstat: test fake: expected -f -F json -x -t IDS, got {ARGS}", 2)
    jobs, rc = {}, 0
    with State() as st:
        for ident in ARGS[5:]:
            found = find(st, ident)
            if not found:
                sys.stderr.write(f"qstat: Unknown Job Id {ident}\n")
                rc = 153
            for key, el in found:
                state, code = element_state(el)
                attrs = {"job_state": {"running": "R", "queued": "Q"}.get(state, "F")}
                if code is not None:
                    attrs["Exit_status"] = code
                jobs[f"{key}.fakeserver"] = attrs
    print(json.dumps({"timestamp": int(time.time()), "pbs_version": "fake",
                      "pbs_server": "fakeserver", "Jobs": jobs}, indent=4))
    sys.exit(rc)


def lsf_bjobs() -> None:
    if ARGS[:4] != ["-a", "-o", "jobid jobindex stat exit_code", "-json"] or not ARGS[4:]:
        fail(f"bjobs: test fake: unexpected arguments {ARGS}", 2)
    if "-noheader" in ARGS:
        fail("bjobs: -json cannot be used with -noheader", 255)
    records = []
    with State() as st:
        for ident in ARGS[4:]:
            found = find(st, ident)
            if not found:
                records.append({"JOBID": ident, "ERROR": f"Job <{ident}> is not found"})
            for key, el in found:
                state, code = element_state(el)
                stat = "RUN" if state == "running" else "DONE" if code == 0 else "EXIT"
                records.append({"JOBID": key.split("[")[0], "JOBINDEX": str(el.get("index", 0)),
                                "STAT": stat, "EXIT_CODE": "" if code in (None, 0) else str(code)})
    print(json.dumps({"COMMAND": "bjobs", "JOBS": len(records), "RECORDS": records}, indent=2))


def condor_q(history: bool) -> None:
    if ARGS[:3] != ["-json", "-attributes", "ClusterId,ProcId,JobStatus,ExitCode"]:
        fail(f"{CMD}: test fake: unexpected arguments {ARGS}", 2)
    ads = []
    with State() as st:
        for ident in ARGS[3:]:
            if not re.fullmatch(r"\d+(\.\d+)?", ident):
                fail(f"{CMD}: bad constraint {ident}", 1)
            for key, el in find(st, ident):
                state, code = element_state(el)
                if (state == "running") == history:
                    continue
                c, p = key.split(".")
                status = {"running": 2, "cancelled": 3}.get(state, 4)
                ad = {"ClusterId": int(c), "ProcId": int(p), "JobStatus": status}
                if status == 4:
                    ad["ExitCode"] = code
                ads.append(ad)
    if ads:  # condor_q -json prints nothing at all when nothing matches
        print(json.dumps(ads, indent=2))


def oarstat() -> None:
    if not ARGS or ARGS[0] != "-J" or len(ARGS[1:]) % 2 or any(a != "-j" for a in ARGS[1::2]):
        fail(f"oarstat: test fake: expected -J (-j ID)..., got {ARGS}", 2)
    out = {}
    with State() as st:
        for ident in ARGS[2::2]:
            for key, el in find(st, ident):
                state, code = element_state(el)
                native = {"running": "Running", "cancelled": "Error"}.get(
                    state, "Terminated" if code == 0 else "Error")
                out[key] = {"state": native, "exit_code": code,
                            "array_index": el.get("index", 1)}
    print(json.dumps(out, indent=4))


def showq() -> None:
    if ARGS != ["--xml"]:
        fail(f"showq: test fake: expected --xml, got {ARGS}", 2)
    rows: dict[str, list[str]] = {"active": [], "completed": []}
    with State() as st:
        for job in st["jobs"].values():
            for key, el in job["elements"].items():
                state, code = element_state(el)
                native = {"running": "Running", "cancelled": "Removed"}.get(
                    state, "Completed")
                rows["active" if state == "running" else "completed"].append(
                    f'<job JobID="{key}" State="{native}"></job>')
    print("<Data><Object>queue</Object>" + "".join(
        f'<queue option="{k}" count="{len(v)}">{"".join(v)}</queue>' for k, v in rows.items())
        + "</Data>")


def cancel(system: str) -> None:
    if not ARGS:
        fail(f"{CMD}: no job id given", 2)
    rc = 0
    with State() as st:
        for ident in ARGS:
            found = find(st, ident)
            if not found:
                sys.stderr.write({"pbs": f"qdel: Unknown Job Id {ident}",
                                  "lsf": f"Job <{ident}>: No matching job found",
                                  "htcondor": f"Couldn't find/remove all jobs matching {ident}",
                                  "oar": f"[ERROR] Unknown job {ident}",
                                  "moab": f"ERROR: invalid job specified ({ident})"}[system]
                                 + "\n")
                rc = {"pbs": 153, "lsf": 255}.get(system, 1)
            for _key, el in found:
                if element_state(el)[0] == "running":
                    try:
                        os.killpg(el["pid"], signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                    el["cancelled"] = True
    sys.exit(rc)


def main() -> None:
    system = {"bsub": "lsf", "bjobs": "lsf", "bkill": "lsf", "oarsub": "oar", "oarstat": "oar",
              "oardel": "oar", "msub": "moab", "showq": "moab", "canceljob": "moab"}.get(
        CMD, "htcondor" if CMD.startswith("condor") else "pbs")
    if CMD == "qsub":
        if SYSTEM != "pbs" or len(ARGS) != 1:
            fail(f"qsub: test fake (pbs) takes exactly one script, got {ARGS}", 2)
        submit_shell("pbs", ARGS[0], read_script(ARGS[0]))
    elif CMD == "msub":
        if len(ARGS) != 1:
            fail(f"msub: expected one script, got {ARGS}", 2)
        submit_shell("moab", ARGS[0], read_script(ARGS[0]))
    elif CMD == "bsub":
        if ARGS:  # the script must come on stdin, else #BSUB lines are not read
            fail(f"bsub: test fake expects the script on stdin, got arguments {ARGS}", 2)
        text = sys.stdin.read()
        path = os.path.join(DIR, f"bsub-{time.time_ns()}.sh")
        with open(path, "w") as f:
            f.write(text)
        submit_shell("lsf", path, text)
    elif CMD == "oarsub":
        if len(ARGS) != 2 or ARGS[0] != "-S":
            fail(f"oarsub: test fake expects -S SCRIPT (else #OAR lines are ignored), got {ARGS}")
        if not os.access(ARGS[1], os.X_OK):
            fail(f"oarsub: {ARGS[1]} is not executable", 2)
        submit_shell("oar", ARGS[1], read_script(ARGS[1]))
    elif CMD == "condor_submit":
        if len(ARGS) != 1:
            fail(f"condor_submit: expected one file, got {ARGS}", 1)
        condor_submit(ARGS[0])
    elif CMD == "qstat":
        pbs_qstat()
    elif CMD == "bjobs":
        lsf_bjobs()
    elif CMD in ("condor_q", "condor_history"):
        condor_q(history=CMD == "condor_history")
    elif CMD == "oarstat":
        oarstat()
    elif CMD == "showq":
        showq()
    elif CMD in ("qdel", "bkill", "condor_rm", "oardel", "canceljob"):
        cancel(system)
    else:
        fail(f"fakebatch: unknown command {CMD}", 127)


if __name__ == "__main__":
    main()
