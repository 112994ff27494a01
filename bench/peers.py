"""Peers side by side (issue 17): the same no-op workload for qwenbuild, GNU make, doit and
DVC, CPU time of whole processes. Used by bench/run.py (`--only peers`).

The workload: N independent targets, each one small file made from one input file. The
peers are installed by the bench itself in a throw-away virtual environment (pip, from
PyPI; never a dependency of qwenbuild); a peer that cannot be installed or run is skipped
with the reason.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Sequence
from pathlib import Path

#: What a peer call may take before it counts as not finishing in reasonable time.
TIMEOUT = 600.0


def cpu_seconds(command: Sequence[str], cwd: Path | None = None,
                env: dict[str, str] | None = None, timeout: float = TIMEOUT,
                check: bool = True) -> tuple[float, str]:
    """(user + system CPU time of the whole process tree, stdout) of one run. The tree
    must be waited for: resource.getrusage(RUSAGE_CHILDREN) counts only children reaped."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])}... exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout)[-500:]}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, proc.stdout


def median_cpu(command: Sequence[str], runs: int, **kw: object) -> float:
    return statistics.median(cpu_seconds(command, **kw)[0]  # type: ignore[arg-type]
                             for _ in range(runs))


def install(folder: Path, packages: Sequence[str]) -> tuple[Path | None, str]:
    """A virtual environment at `folder` with `packages` (reused when it has them):
    (its bin folder, "") or (None, why not)."""
    bin_dir = folder / "bin"
    if all((bin_dir / p).exists() for p in packages):
        return bin_dir, ""
    try:
        if not (bin_dir / "python").exists():
            venv.create(folder, with_pip=True)
        started = time.perf_counter()
        proc = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                               *packages], capture_output=True, text=True, timeout=1200,
                              check=False)
        print(f"    (peers installed in {time.perf_counter() - started:.0f} s)",
              file=sys.stderr)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"cannot make a virtual environment: {exc}"
    if proc.returncode != 0:
        return None, f"pip install failed: {proc.stderr.strip().splitlines()[-1:]}"
    return bin_dir, ""


def inputs(folder: Path, n: int) -> None:
    (folder / "in").mkdir(parents=True, exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    for i in range(n):
        (folder / "in" / f"{i}.txt").write_text(f"input {i}\n")


def make_workload(folder: Path, n: int) -> list[str]:
    """GNU make: one explicit rule per target, as a generated Makefile would have."""
    inputs(folder, n)
    rules = [f"out/{i}.txt: in/{i}.txt\n\tcp $< $@\n" for i in range(n)]
    outs = " ".join(f"out/{i}.txt" for i in range(n))
    (folder / "Makefile").write_text(f"all: {outs}\n.PHONY: all\n" + "".join(rules))
    return ["make", "-s", "-C", str(folder), "all"]


DODO = '''\
N = {n}


def task_copy():
    for i in range(N):
        yield {{"name": str(i), "file_dep": [f"in/{{i}}.txt"], "targets": [f"out/{{i}}.txt"],
               "actions": [f"cp in/{{i}}.txt out/{{i}}.txt"]}}
'''


def doit_workload(folder: Path, n: int, bin_dir: Path) -> list[str]:
    inputs(folder, n)
    (folder / "dodo.py").write_text(DODO.format(n=n))
    return [str(bin_dir / "doit"), "-f", str(folder / "dodo.py"), "--dir", str(folder)]


def dvc_workload(folder: Path, n: int, bin_dir: Path) -> tuple[list[str], list[str]]:
    """DVC: one stage per target in dvc.yaml. The first build is recorded with
    `dvc commit` (the outputs made here, not by N `cp` processes), then no-op `dvc status`
    and `dvc repro` are measured."""
    inputs(folder, n)
    lines = ["stages:"]
    for i in range(n):
        lines += [f"  s{i}:", f"    cmd: cp in/{i}.txt out/{i}.txt",
                  f"    deps: [in/{i}.txt]", "    outs:", f"    - out/{i}.txt:",
                  "        cache: false"]
        shutil.copyfile(folder / "in" / f"{i}.txt", folder / "out" / f"{i}.txt")
    (folder / "dvc.yaml").write_text("\n".join(lines) + "\n")
    dvc = str(bin_dir / "dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=folder, check=True, env=env,
                   capture_output=True, timeout=TIMEOUT)
    subprocess.run([dvc, "config", "core.autostage", "false"], cwd=folder, check=False,
                   env=env, capture_output=True, timeout=TIMEOUT)
    subprocess.run([dvc, "commit", "-f", "-q"], cwd=folder, check=True, env=env,
                   capture_output=True, timeout=TIMEOUT)
    return [dvc, "status", "-q"], [dvc, "repro", "-q"]
