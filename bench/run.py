"""qwenbuild benchmarks: `python bench/run.py [--quick] [--runs N]`.

Makes synthetic campaigns in a temporary folder and prints a Markdown table (median of
several runs, machine described). Not tests: nothing here asserts a time.

- no-op build and plan (everything up to date) at 1,000 / 5,000 / 20,000 jobs: wall time
  and peak memory of the whole command;
- incremental: one asset's copy edited in a 5,000-job campaign, time to the first request;
- cold build against a fake HTTP provider on 127.0.0.1 with a fixed latency: efficiency
  against the ideal ceil(jobs / concurrency) x latency, at concurrency 4 and 16, and with
  two providers at once;
- preview renderer throughput at 1024x1024 and 2048x2048;
- watch: save-to-rebuilt latency with the preview provider;
- the team cache on a real SeaweedFS (tests/seaweedfs.py) on 127.0.0.1: a no-op build's
  requests to it (target: none) and time, against the same build without a team cache; a
  warm restore of every job from it onto an empty local cache; a cold build writing
  every image through.
- the import cost of the live progress display (rich) on top of a build's imports.
- the review page at 20,000 images: its bytes (and the first screen's), peak memory of
  writing it, and its load time in headless chromium (Debian's, through Playwright) from
  file://, to the first screen drawn and to the images on it loaded;
- `qwenbuild --help` start-up time.

And the targets of issue 17, each with the figure measured, the target and whether it is
met (or the gap), in a table of their own:

- no-op build CPU time (whole processes, user + system, medians) as a ratio to the bare
  interpreter (`python -c pass`) at 1,000 and 20,000 jobs, both with bytecode as an
  installed package has it (`as_installed`) (`noopcpu`);
- `qwenbuild --help`, every command's `--help` and the no-op fast path importing none of
  httpx, Pillow, Jinja2, pydantic (`imports`);
- cold build memory per job above the interpreter's, preview jobs, review page included:
  peak RSS of the build's process at 2,000 and 20,000 jobs (`memory`);
- the review page's load in headless chromium at 20,000 images (`page`);
- watch: save to rebuilt for a two-image edit (`watch`);
- peers side by side on the same no-op workload (N independent targets, one small file
  from one input each): GNU make, doit, DVC (`dvc status`, `dvc repro`), installed by the
  bench in a throw-away virtual environment (`peers`; `--peers-venv` keeps it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PYTHON = sys.executable

HEADER = """\
[campaign]
name = "bench"
templates = ["{templates}"]
# The repository's own templates, outside the bench's temporary campaign folders.
allow_external_templates = true

[brand]
name = "Bench Brand"
palette = ["teal", "saffron", "cream", "midnight blue"]
style = "Swiss grid poster"

[copy]
footer = "Benchmarks are not tests"

[defaults]
template = "poster.j2"
aspects = ["1:1", "3:4", "16:9", "9:16"]
providers = ["{provider}"]
seeds = [1]
negative = "blurry text, watermark"

"""


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                   if x.startswith("MemTotal")) / 1024 / 1024
        memory = f"{mem:.0f} GiB"
    except (OSError, StopIteration):
        memory = "? GiB"
    return (f"{os.cpu_count()} cores ({cpu}), {memory}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def write_campaign(folder: Path, jobs: int, provider_table: str, provider: str,
                   per_asset: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    assets = max(1, jobs // per_asset)
    templates = (ROOT / "qwenbuild" / "templates").as_posix()
    text = [HEADER.format(templates=templates, provider=provider),
            provider_table]
    aspects = '["1:1", "3:4", "16:9", "9:16"]' if per_asset == 4 else '["1:1"]'
    for i in range(assets):
        text.append(f'[[assets]]\nid = "asset-{i:05d}"\naspects = {aspects}\n'
                    f'[assets.copy]\nheadline = "HEADLINE NUMBER {i}"\n'
                    f'subtitle = "Subtitle of asset {i}"\n\n')
    path = folder / "campaign.toml"
    path.write_text("".join(text))
    return path


def child(args: list[str], env: dict[str, str]) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_path = fh.name
    subprocess.run([PYTHON, str(ROOT / "bench" / "child.py"), result_path, *args],
                   check=True, env=env, cwd=ROOT)
    data = json.loads(Path(result_path).read_text())
    os.unlink(result_path)
    if data["code"] != 0:
        raise SystemExit(f"qwenbuild {' '.join(args)} exited with {data['code']}")
    return data


def median(values: list[float]) -> float:
    return statistics.median(values)


Row = tuple[str, str, str]

#: Issue 17's targets as measured: (target, measured, goal, met or the gap).
TARGETS: list[tuple[str, str, str, str]] = []


def target(name: str, measured: str, goal: str, met: bool | None, gap: str = "") -> None:
    verdict = "not measured" if met is None else "met" if met else f"**gap**: {gap}"
    TARGETS.append((name, measured, goal, verdict))


def qwenbuild_command() -> list[str]:
    """How users start qwenbuild: the installed script, else `python -m qwenbuild`."""
    script = shutil.which("qwenbuild", path=str(Path(PYTHON).parent))
    return [script] if script else [PYTHON, "-m", "qwenbuild"]


def as_installed(env: dict[str, str], work: Path) -> dict[str, str]:
    """`env` for a process run as an installed qwenbuild runs: with bytecode. Without it
    (PYTHONDONTWRITEBYTECODE, as in some sandboxes) every changed module is compiled again
    in every process, a cost installed packages never pay. The bytecode goes to a folder
    of the bench's (PYTHONPYCACHEPREFIX), never beside the sources; the first run of each
    measure writes it."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(work / "pycache")}


def bench_noop_cpu(sizes: list[int], runs: int, work: Path) -> list[Row]:
    """No-op build CPU time of the whole process against `python -c pass`'s (issue 17:
    ≤ 1.5× at 1,000 jobs, ≤ 2× at 20,000), interleaved so that a busy moment weighs on
    both."""
    from peers import cpu_seconds

    rows: list[Row] = []
    table = '[providers.fast]\nkind = "instant"\n'
    for jobs in sizes:
        folder = work / f"noopcpu-{jobs}"
        campaign = write_campaign(folder, jobs, table, "fast")
        env = {**os.environ, "QWENBUILD_CACHE_DIR": str(folder / "cache")}
        child(["build", str(campaign)], env)
        env = as_installed(env, work)
        cpu_seconds([PYTHON, "-c", "pass"], env=env)
        command = [*qwenbuild_command(), "build", str(campaign)]
        # The bench's provider kind is unknown to a plain `qwenbuild`: only the fast path
        # can answer (exit 0 and "up to date"), the full path would fail.
        _, out = cpu_seconds(command, env=env)
        if f"{jobs} up to date" not in out:
            raise SystemExit(f"the no-op fast path did not answer: {out!r}")
        ours, bare = [], []
        for _ in range(runs):
            ours.append(cpu_seconds(command, env=env)[0])
            bare.append(cpu_seconds([PYTHON, "-c", "pass"], env=env)[0])
        ratio = median(ours) / median(bare)
        goal = 1.5 if jobs <= 1000 else 2.0
        rows.append((f"no-op build CPU, {jobs:,} jobs, whole process",
                     f"{median(ours) * 1000:.0f} ms = {ratio:.2f}× `python -c pass`",
                     f"bare interpreter {median(bare) * 1000:.0f} ms CPU; medians of {runs}"))
        target(f"no-op build CPU time, {jobs:,} jobs", f"{ratio:.2f}× `python -c pass` "
               f"({median(ours) * 1000:.0f} vs {median(bare) * 1000:.0f} ms)",
               f"≤ {goal}×", ratio <= goal, f"{ratio / goal:.2f}× the target")
    return rows


#: The heavy third-party modules issue 17 names.
HEAVY = ("httpx", "PIL", "jinja2", "pydantic")


def _imported(args: list[str], cwd: Path | None = None) -> set[str]:
    def names(command: list[str]) -> set[str]:
        proc = subprocess.run([PYTHON, "-X", "importtime", *command], capture_output=True,
                              text=True, cwd=cwd, timeout=120, check=False)
        return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    return names(["-m", "qwenbuild", *args]) - names(["-c", "pass"])


def bench_imports(work: Path) -> list[Row]:
    """What `qwenbuild --help`, every command's `--help`, the commands that need no
    library and the no-op fast path import of httpx, Pillow, Jinja2 and pydantic."""
    import argparse as _argparse

    from qwenbuild.cli.app import parser

    commands: list[list[str]] = []

    def walk(p: _argparse.ArgumentParser, prefix: list[str]) -> None:
        commands.append([*prefix, "--help"])
        for action in p._actions:
            if isinstance(action, _argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*prefix, name])

    walk(parser(), [])
    commands += [["--version"], ["providers"], ["completion", "bash"]]
    folder = work / "imports"
    campaign = write_campaign(folder, 8, '[providers.p]\nkind = "preview"\nscale = 0.1\n',
                              "p")
    env_cache = str(folder / "cache")
    saved = os.environ.get("QWENBUILD_CACHE_DIR")
    os.environ["QWENBUILD_CACHE_DIR"] = env_cache
    try:
        subprocess.run([PYTHON, "-m", "qwenbuild", "build", str(campaign)], check=True,
                       capture_output=True)
        commands.append(["build", str(campaign)])  # answered by the fast path
        heavy: dict[str, list[str]] = {}
        for command in commands:
            found = sorted(m for m in _imported(command)
                           if m.split(".")[0] in HEAVY and "." not in m)
            if found:
                heavy[" ".join(c for c in command if c != str(campaign))] = found
    finally:
        if saved is None:
            os.environ.pop("QWENBUILD_CACHE_DIR", None)
        else:
            os.environ["QWENBUILD_CACHE_DIR"] = saved
    shown = "; ".join(f"`{k}`: {', '.join(v)}" for k, v in heavy.items()) or "none"
    target("start-up imports: `--help` of every command, `--version`, `providers`, "
           "`completion`, the no-op build", f"{len(commands)} commands; heavy imports: {shown}",
           "no httpx, Pillow, Jinja2, pydantic", not heavy, shown)
    return [("start-up imports (httpx, Pillow, Jinja2, pydantic)",
             f"{len(commands) - len(heavy)} of {len(commands)} commands import none",
             shown)]


def _peak_rss_mb(code: str) -> float:
    proc = subprocess.run([PYTHON, "-c", code + "\nimport resource; "
                           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout.split()[-1]) / 1024


def bench_memory(sizes: list[int], work: Path) -> list[Row]:
    """Peak memory of a cold build of preview jobs (tiny comps: the measure is the build's
    own memory), review page included, above the bare interpreter's."""
    base = statistics.median(_peak_rss_mb("pass") for _ in range(3))
    table = '[providers.preview]\nkind = "preview"\nscale = 0.1\n'
    rows: list[Row] = []
    peaks: dict[int, float] = {}
    for jobs in sizes:
        folder = work / f"memory-{jobs}"
        campaign = write_campaign(folder, jobs, table, "preview")
        env = {**os.environ, "QWENBUILD_CACHE_DIR": str(folder / "cache")}
        cold = child(["build", str(campaign)], env)
        peaks[jobs] = peak = cold["max_rss_mb"]
        per_job = (peak - base) * 1024 / jobs
        rows.append((f"cold build memory, {jobs:,} preview jobs (review page included)",
                     f"peak {peak:.0f} MB ({per_job:.1f} KB/job above the interpreter)",
                     f"bare interpreter {base:.0f} MB; build {cold['seconds']:.0f} s"))
        target(f"cold build memory, {jobs:,} preview jobs, per job above the interpreter",
               f"{per_job:.1f} KB/job (peak {peak:.0f} MB)", "≤ 5 KB/job",
               per_job <= 5, f"{per_job / 5:.1f}× the target")
    if len(sizes) > 1:
        low, high = min(sizes), max(sizes)
        slope = (peaks[high] - peaks[low]) * 1024 / (high - low)
        rows.append((f"cold build memory, each job from {low:,} to {high:,}",
                     f"{slope:.1f} KB/job", "the fixed cost (imports) left out"))
    return rows


def bench_noop(sizes: list[int], runs: int, work: Path) -> list[Row]:
    rows: list[Row] = []
    table = '[providers.fast]\nkind = "instant"\n'
    for jobs in sizes:
        folder = work / f"noop-{jobs}"
        campaign = write_campaign(folder, jobs, table, "fast")
        env = {**os.environ, "QWENBUILD_CACHE_DIR": str(folder / "cache")}
        cold = child(["build", str(campaign)], env)
        builds = [child(["build", str(campaign)], env) for _ in range(runs)]
        plans = [child(["plan", str(campaign)], env) for _ in range(runs)]
        b = median([r["seconds"] for r in builds])
        p = median([r["seconds"] for r in plans])
        rows.append((f"no-op build, {jobs:,} jobs",
                     f"{b:.2f} s ({b / jobs * 1e6:.0f} µs/job)",
                     f"peak {max(r['max_rss_mb'] for r in builds):.0f} MB; cold build "
                     f"{cold['seconds']:.1f} s, peak {cold['max_rss_mb']:.0f} MB"))
        rows.append((f"no-op plan, {jobs:,} jobs", f"{p:.2f} s",
                     f"peak {max(r['max_rss_mb'] for r in plans):.0f} MB"))
    return rows


def bench_incremental(jobs: int, runs: int, work: Path) -> list[Row]:
    folder = work / f"incremental-{jobs}"
    table = '[providers.fast]\nkind = "instant"\n'
    campaign = write_campaign(folder, jobs, table, "fast")
    env = {**os.environ, "QWENBUILD_CACHE_DIR": str(folder / "cache")}
    child(["build", str(campaign)], env)
    firsts, totals = [], []
    for run in range(runs):
        text = campaign.read_text()
        target = jobs // 8 // 4
        campaign.write_text(re.sub(rf'headline = "[^"]*\b{target}"',
                                   f'headline = "EDITED {run} {target}"', text, count=1))
        mark = folder / "first-call.txt"
        mark.unlink(missing_ok=True)
        started = time.time()
        result = child(["build", str(campaign)], {**env, "BENCH_FIRST_CALL_FILE": str(mark)})
        firsts.append(float(mark.read_text()) - started)
        totals.append(result["seconds"])
    return [(f"incremental: one asset edited, {jobs:,} jobs",
             f"{median(firsts):.2f} s to the first request",
             f"whole build {median(totals):.2f} s (4 jobs regenerated)")]


def bench_concurrency(jobs: int, latency: float, work: Path) -> list[Row]:
    from tests.fakes.aimlapi import FAKE_KEY, FakeAimlapi
    from tests.fakes.server import FakeServer

    rows: list[Row] = []
    for label, concurrencies in ((f"{jobs} jobs, concurrency 4", [4]),
                                 (f"{jobs} jobs, concurrency 16", [16]),
                                 (f"{jobs} jobs on two providers at once, 4 each", [4, 4])):
        apps = [FakeAimlapi() for _ in concurrencies]
        servers = [FakeServer(app) for app in apps]
        for app, server in zip(apps, servers, strict=True):
            app.latency = latency
            server.__enter__()
        try:
            folder = work / f"conc-{label.replace(' ', '-').replace(',', '')}"
            # Each provider its own model: equal kind and model would make equal images
            # (equal keys), paid for once.
            models = ("alibaba/qwen-image-2-0", "alibaba/qwen-image-2-0-pro")
            tables = "".join(
                f'[providers.p{i}]\nkind = "aimlapi"\nconcurrency = {c}\n'
                f'model = "{models[i]}"\nbase_url = "{server.url}"\n\n'
                for i, (c, server) in enumerate(zip(concurrencies, servers, strict=True)))
            names = ", ".join(f'"p{i}"' for i in range(len(concurrencies)))
            per_provider = jobs // len(concurrencies)
            campaign = write_campaign(folder, per_provider, tables, "p0", per_asset=1)
            campaign.write_text(campaign.read_text().replace('providers = ["p0"]',
                                                             f"providers = [{names}]"))
            env = {**os.environ, "QWENBUILD_CACHE_DIR": str(folder / "cache"),
                   "AIMLAPI_API_KEY": FAKE_KEY}
            out = subprocess.run([PYTHON, "-m", "qwenbuild", "build", str(campaign), "--json"],
                                 capture_output=True, text=True, env=env, cwd=ROOT, check=False)
            report = json.loads(out.stdout)
            assert report["generated"] == jobs, out.stderr[-2000:]
            wall = float(report["seconds"])
            ideal = max(math.ceil(per_provider / c) for c in concurrencies) * latency
            rows.append((f"cold build against a fake ({latency * 1000:.0f} ms), {label}",
                         f"{ideal / wall * 100:.0f}% efficiency",
                         f"{wall:.2f} s, ideal {ideal:.2f} s"))
        finally:
            for server in servers:
                server.__exit__(None, None, None)
    return rows


def bench_preview(count: int) -> list[Row]:
    from qwenbuild.providers.preview_render import render_png

    design = {"brand": {"name": "Bench", "palette": ["teal", "cream", "coral"]},
              "copy": {"headline": "THROUGHPUT TEST", "subtitle": "Preview renderer",
                       "blocks": [{"title": "Block", "lines": ["one", "two"]}] * 2,
                       "footer": "footer"},
              "label": "bench"}
    rows: list[Row] = []
    for size in (1024, 2048):
        render_png(size, size, 0, design)  # warm fonts
        started = time.perf_counter()
        for seed in range(count):
            render_png(size, size, seed + 1, design)
        per_second = count / (time.perf_counter() - started)
        rows.append((f"preview renderer {size}x{size}", f"{per_second:.1f} images/s",
                     "one core, PNG encoding included"))
    return rows


def bench_watch(runs: int, work: Path) -> list[Row]:
    values = _watch_latency(runs, work)
    if not values:
        target("watch: save to rebuilt, two-image edit", "not measured", "≤ 0.3 s", None)
        return [("watch: save to rebuilt", "not measured", "qwenbuild watch unavailable")]
    value = median(values)
    target("watch: save to rebuilt, two-image edit (preview, its default size)",
           f"{value * 1000:.0f} ms", "≤ 300 ms", value <= 0.3, f"{value / 0.3:.1f}× the target")
    return [("watch: save to rebuilt (preview at its default size, two images edited)",
             f"{value * 1000:.0f} ms", f"median of {len(values)} edits")]


def _watch_latency(runs: int, work: Path) -> list[float]:
    """Start `qwenbuild watch --no-serve`, edit two headlines in one save (two images of
    1:1, the preview at its default size), time until both outputs changed."""
    folder = work / "watch"
    table = '[providers.tiny]\nkind = "preview"\n'
    campaign = write_campaign(folder, 40, table, "tiny", per_asset=1)
    env = {**os.environ, "QWENBUILD_CACHE_DIR": str(folder / "cache")}
    proc = subprocess.Popen([PYTHON, "-m", "qwenbuild", "watch", str(campaign), "--no-serve"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    values: list[float] = []
    try:
        deadline = time.perf_counter() + 300
        assert proc.stdout is not None
        for line in proc.stdout:  # the first build, then it watches
            if "jobs:" in line or time.perf_counter() > deadline:
                break
        time.sleep(1.0)
        if proc.poll() is not None:
            return []
        out = folder / "out" / "1x1" / "tiny"
        targets = [next(out.glob(f"asset-{i:05d}.*")) for i in (0, 1)]
        for run in range(runs):
            before = [t.stat().st_mtime_ns for t in targets]
            text = campaign.read_text()
            for i in (0, 1):
                old = (f'"HEADLINE NUMBER {i}"' if run == 0 else f'"WATCHED {run - 1} {i}"')
                text = text.replace(old, f'"WATCHED {run} {i}"', 1)
            started = time.perf_counter()
            campaign.write_text(text)
            deadline = started + 20
            while (any(t.stat().st_mtime_ns == b for t, b in zip(targets, before, strict=True))
                   and time.perf_counter() < deadline):
                time.sleep(0.002)
            values.append(time.perf_counter() - started)
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return values


CHROMIUM = os.environ.get("QWENBUILD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]


def bench_page(jobs: int, runs: int, work: Path) -> list[Row]:
    """The review page of a built campaign of `jobs` images (4 aspects per asset)."""
    folder = work / f"page-{jobs}"
    campaign = write_campaign(folder, jobs, '[providers.fast]\nkind = "instant"\n', "fast")
    env = {**os.environ, "QWENBUILD_CACHE_DIR": str(folder / "cache")}
    cold = child(["build", str(campaign)], env)
    out = folder / "out"
    files = [out / "index.html", *sorted((out / "review").iterdir())]
    total = sum(f.stat().st_size for f in files)
    result_path = folder / "page-memory.json"
    subprocess.run([PYTHON, str(ROOT / "bench" / "page.py"), str(campaign), str(result_path)],
                   check=True, env=env, cwd=ROOT)
    memory = json.loads(result_path.read_text())
    rows: list[Row] = [
        (f"review page, {jobs:,} images: size", f"{total / 1e6:.1f} MB in {len(files)} files",
         f"index.html {files[0].stat().st_size / 1e3:.0f} KB, index.js "
         f"{(out / 'review' / 'index.js').stat().st_size / 1e3:.0f} KB, the rest in chunks"),
        (f"review page, {jobs:,} images: writing it (cold build)",
         f"peak {memory['peak_bytes'] / 1e6:.1f} MB ({memory['peak_bytes'] / jobs:,.0f} B/job)",
         f"{memory['seconds']:.2f} s; Python allocations (tracemalloc), target ≤ 5 KB/job; "
         f"the whole cold build: peak RSS {cold['max_rss_mb']:.0f} MB"),
    ]
    loads = _page_loads(out / "index.html", runs)
    if loads is None:
        rows.append((f"review page, {jobs:,} images: load in chromium", "not measured",
                     f"needs Playwright and {CHROMIUM}"))
        target(f"review page load, {jobs:,} images, headless chromium", "not measured",
               "< 1 s", None)
        return rows
    first = median([r[0] for r in loads])
    images = median([r[1] for r in loads])
    fetched = median([r[2] for r in loads])
    rows.append((f"review page, {jobs:,} images: load in headless chromium",
                 f"{first * 1000:.0f} ms to the first screen, {images * 1000:.0f} ms to its "
                 "images", f"from file://, median of {len(loads)}; the first screen reads "
                 f"{fetched / 1e3:.0f} KB of {total / 1e6:.1f} MB; target < 1 s"))
    target(f"review page load, {jobs:,} images, headless chromium",
           f"{first * 1000:.0f} ms to the first screen, {images * 1000:.0f} ms to its images",
           "< 1 s (first screen with its images)", images < 1.0, f"{images:.2f} s")
    return rows


def _page_loads(page: Path, runs: int) -> list[tuple[float, float, int]] | None:
    """(seconds to the first screen, seconds to its images loaded, bytes it read) per run,
    each in a fresh browser context; None without Playwright or chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(CHROMIUM).is_file():
        return None
    found = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(runs):
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                tab = context.new_page()
                tab.goto(page.as_uri(), wait_until="commit")
                tab.wait_for_selector("html[data-ready='1']", state="attached", timeout=60000)
                first = tab.evaluate(
                    "performance.getEntriesByName('qb-first-screen')[0].startTime")
                tab.wait_for_function(
                    "() => [...document.querySelectorAll('figure.output img')].filter(i => {"
                    " const r = i.getBoundingClientRect();"
                    " return r.bottom > 0 && r.top < innerHeight; })"
                    ".every(i => i.complete)", timeout=60000)
                images = tab.evaluate("performance.now()")
                # Every file the first screen read (file:// loads are not resource entries).
                names = tab.evaluate("[location.href, ...[...document.scripts]"
                                     ".map(s => s.src).filter(Boolean)]")
                read = 0
                for name in names:
                    path = Path(unquote(urlsplit(name).path))
                    if path.is_file() and path.suffix in (".html", ".js"):
                        read += path.stat().st_size
                found.append((first / 1000, images / 1000, read))
                context.close()
        finally:
            browser.close()
    return found


def bench_help(runs: int) -> list[Row]:
    script = shutil.which("qwenbuild", path=str(Path(PYTHON).parent)) or ""
    command = [script, "--help"] if script else [PYTHON, "-m", "qwenbuild", "--help"]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], capture_output=True, check=True)
        bare.append(time.perf_counter() - started)
    return [("`qwenbuild --help` start-up", f"{median(times) * 1000:.0f} ms",
             f"bare `python -c pass`: {median(bare) * 1000:.0f} ms")]


def bench_remote(jobs: int, runs: int, work: Path) -> list[Row]:
    from tests.seaweedfs import SeaweedFS

    folder = work / f"remote-{jobs}"
    campaign = write_campaign(folder, jobs, '[providers.fast]\nkind = "instant"\n', "fast")
    local = {k: v for k, v in os.environ.items()
             if not k.startswith(("AWS_", "QWENBUILD_REMOTE"))}
    with SeaweedFS(work / "seaweedfs") as server:
        env = {**local, **server.env(url="s3://team/bench"),
               "QWENBUILD_CACHE_DIR": str(folder / "cache")}
        cold = child(["build", str(campaign)], env)
        noops = [child(["build", str(campaign)], env) for _ in range(runs)]
        bare = [child(["build", str(campaign)], {**local, "QWENBUILD_CACHE_DIR":
                                                 str(folder / "cache")}) for _ in range(runs)]
        restores, local_restores = [], []
        for run in range(runs):
            shutil.rmtree(folder / "out")
            restores.append(child(["build", str(campaign)], {
                **env, "QWENBUILD_CACHE_DIR": str(folder / f"cache-restore-{run}")}))
            # The same restore from a full local cache (the key memo warm too): the part
            # of the above that is not the team cache's.
            shutil.rmtree(folder / "out")
            local_restores.append(child(["build", str(campaign)], {
                **local, "QWENBUILD_CACHE_DIR": str(folder / f"cache-restore-{run}")}))
    noop = median([r["seconds"] for r in noops])
    restore = median([r["seconds"] for r in restores])
    calls = max(r["remote_calls"] for r in noops)
    imported = any(r["obstore_imported"] for r in noops)
    return [
        (f"team cache: no-op build, {jobs:,} jobs", f"{noop:.2f} s, {calls:.0f} requests "
         "to the team cache",
         f"without a team cache {median([r['seconds'] for r in bare]):.2f} s; obstore "
         f"{'imported' if imported else 'not even imported'}"),
        (f"team cache: warm restore of {jobs:,} jobs onto an empty local cache",
         f"{restore:.2f} s ({restore / jobs * 1e3:.1f} ms/job)",
         f"{median([r['remote_calls'] for r in restores]):.0f} requests (a record and an "
         "image per job, 16 at once); SeaweedFS on 127.0.0.1; the same restore from a full "
         f"local cache: {median([r['seconds'] for r in local_restores]):.2f} s"),
        (f"team cache: cold build writing {jobs:,} images through", f"{cold['seconds']:.2f} s",
         f"{cold['remote_calls']:.0f} requests (lookup, lease, image, record, release per "
         "job); instant provider"),
    ]


def bench_peers(sizes: list[int], runs: int, work: Path, keep: Path | None) -> list[Row]:
    """qwenbuild's no-op CPU time beside GNU make's, doit's and DVC's on the same workload
    (N independent targets, one small file from one input each); ratios < 1: qwenbuild
    is ahead."""
    import peers

    bin_dir, why = peers.install(keep or work / "peers-venv", ["doit", "dvc"])
    rows: list[Row] = []
    table = '[providers.fast]\nkind = "instant"\n'
    for n in sizes:
        folder = work / f"peers-{n}"
        campaign = write_campaign(folder / "qwenbuild", n, table, "fast", per_asset=1)
        env = {**os.environ, "QWENBUILD_CACHE_DIR": str(folder / "qwenbuild" / "cache")}
        child(["build", str(campaign)], env)
        env = as_installed(env, work)
        command = [*qwenbuild_command(), "build", str(campaign)]
        peers.cpu_seconds(command, env=env)
        ours = peers.median_cpu(command, runs, env=env)
        found: dict[str, float | str] = {}
        make = peers.make_workload(folder / "make", n)
        if shutil.which("make"):
            peers.cpu_seconds(make)  # the first build
            found["GNU make"] = peers.median_cpu(make, runs)
        else:
            found["GNU make"] = "not installed"
        if bin_dir is None:
            found["doit"] = found["dvc status"] = found["dvc repro"] = why
        else:
            try:
                doit = peers.doit_workload(folder / "doit", n, bin_dir)
                peers.cpu_seconds(doit)
                found["doit"] = peers.median_cpu(doit, runs)
            except (RuntimeError, subprocess.SubprocessError) as exc:
                found["doit"] = f"failed: {str(exc)[:120]}"
            try:
                status, repro = peers.dvc_workload(folder / "dvc", n, bin_dir)
                dvc_env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
                for name, cmd in (("dvc status", status), ("dvc repro", repro)):
                    found[name] = peers.median_cpu(cmd, runs, cwd=folder / "dvc", env=dvc_env)
            except (RuntimeError, subprocess.SubprocessError) as exc:
                found.setdefault("dvc status", f"failed: {str(exc)[:120]}")
                found.setdefault("dvc repro", f"failed: {str(exc)[:120]}")
        behind = []
        for name, value in found.items():
            if isinstance(value, str):
                rows.append((f"peers, {n:,} targets: {name}", "skipped", value))
                continue
            ratio = ours / value
            rows.append((f"peers, {n:,} targets: qwenbuild / {name}", f"{ratio:.2f}×",
                         f"no-op CPU: qwenbuild {ours * 1000:.0f} ms, {name} "
                         f"{value * 1000:.0f} ms; medians of {runs}"))
            if ratio >= 1:
                behind.append(f"{name} is {ratio:.2f}× faster")
        measured = ", ".join(f"{name} {ours / v:.2f}×" for name, v in found.items()
                             if not isinstance(v, str))
        skipped = [name for name, v in found.items() if isinstance(v, str)]
        target(f"no-op beside peers, {n:,} targets (qwenbuild's CPU time / theirs)",
               measured + (f"; skipped: {', '.join(skipped)}" if skipped else ""),
               "< 1× each (ahead of every one)", not behind if measured else None,
               "; ".join(behind))
    return rows


#: What a build imports before its first job, and what the terminal display adds to it.
_BUILD_IMPORTS = ("import qwenbuild.cli, qwenbuild.cli.build, qwenbuild.cli.progress, "
                  "qwenbuild.build.executor, qwenbuild.campaign")
_DISPLAY_IMPORTS = "import rich.console, rich.live, rich.progress_bar, rich.table, rich.text"


def bench_display(runs: int) -> list[Row]:
    """The import cost of the live display (rich), loaded only by a build on a terminal
    that has work to do: the start-up of a build's imports with and without it."""
    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], capture_output=True, check=True)
        return time.perf_counter() - started

    without, with_rich = [], []
    for _ in range(runs):  # interleaved, so that a busy moment weighs on both
        without.append(run(_BUILD_IMPORTS))
        with_rich.append(run(f"{_BUILD_IMPORTS}; {_DISPLAY_IMPORTS}"))
    added = median(with_rich) - median(without)
    return [("terminal display (rich) import", f"+{added * 1000:.0f} ms",
             f"a build's imports: {median(without) * 1000:.0f} ms without, "
             f"{median(with_rich) * 1000:.0f} ms with; only builds on a terminal with work "
             "to do load it")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--runs", type=int, default=None, help="runs per measure (median)")
    parser.add_argument("--only", action="append", default=[],
                        help="noop, noopcpu, imports, memory, incremental, concurrency, "
                             "preview, watch, page, help, remote, display, peers")
    parser.add_argument("--peers-venv", type=Path, default=None,
                        help="keep the peers' virtual environment here (reused when it "
                             "exists); default: a throw-away one in the temporary folder")
    args = parser.parse_args()
    quick = args.quick
    runs = args.runs or (1 if quick else 3)
    sections: dict[str, Callable[[Path], list[Row]]] = {
        "noop": lambda w: bench_noop([40, 80] if quick else [1000, 5000, 20000], runs, w),
        "incremental": lambda w: bench_incremental(40 if quick else 5000, runs, w),
        "concurrency": lambda w: bench_concurrency(16 if quick else 200,
                                                   0.05 if quick else 0.2, w),
        "preview": lambda w: bench_preview(2 if quick else 10),
        "watch": lambda w: bench_watch(1 if quick else 5, w),
        "page": lambda w: bench_page(200 if quick else 20000, runs if quick else max(runs, 5),
                                     w),
        "help": lambda w: bench_help(3 if quick else 10),
        "remote": lambda w: bench_remote(40 if quick else 1000, runs, w),
        "display": lambda w: bench_display(3 if quick else 15),
        "noopcpu": lambda w: bench_noop_cpu([100, 400] if quick else [1000, 20000],
                                            max(runs, 5) if quick else max(runs, 7), w),
        "imports": bench_imports,
        "memory": lambda w: bench_memory([100, 400] if quick else [2000, 20000], w),
        "peers": lambda w: bench_peers([100, 400] if quick else [1000, 5000],
                                       3 if quick else max(runs, 3), w, args.peers_venv),
    }
    chosen = args.only or list(sections)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="qwenbuild-bench-") as tmp:
        for name in chosen:
            print(f"... {name}", file=sys.stderr, flush=True)
            rows.extend(sections[name](Path(tmp)))
    print(f"Machine: {machine()}. Median of {runs} run(s)"
          + (" (--quick: tiny sizes, not representative)." if quick else "."))
    print()
    print("| measure | result | notes |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if TARGETS:
        print()
        print("Issue 17's targets:")
        print()
        print("| target | measured | goal | verdict |")
        print("| --- | --- | --- | --- |")
        for line in TARGETS:
            print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
