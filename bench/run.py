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
        return [("watch: save to rebuilt", "not measured", "qwenbuild watch unavailable")]
    return [("watch: save to rebuilt (preview, one asset edited)",
             f"{median(values) * 1000:.0f} ms", f"median of {len(values)} edits")]


def _watch_latency(runs: int, work: Path) -> list[float]:
    """Start `qwenbuild watch --no-serve`, edit a headline, time until the output changes."""
    folder = work / "watch"
    table = '[providers.tiny]\nkind = "preview"\nscale = 0.5\n'
    campaign = write_campaign(folder, 40, table, "tiny")
    env = {**os.environ, "QWENBUILD_CACHE_DIR": str(folder / "cache")}
    subprocess.run([PYTHON, "-m", "qwenbuild", "build", str(campaign)], env=env, check=True,
                   capture_output=True, cwd=ROOT)
    proc = subprocess.Popen([PYTHON, "-m", "qwenbuild", "watch", str(campaign), "--no-serve"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = folder / "out" / "1x1" / "tiny" / "asset-00000.png"
    values: list[float] = []
    try:
        time.sleep(2.0)  # let it finish the initial build and start watching
        if proc.poll() is not None:
            return []
        for run in range(runs):
            before = target.stat().st_mtime_ns
            text = campaign.read_text()
            started = time.perf_counter()
            campaign.write_text(text.replace('"HEADLINE NUMBER 0', f'"WATCHED {run} ', 1)
                                if run == 0 else text.replace(f'"WATCHED {run - 1} ',
                                                              f'"WATCHED {run} ', 1))
            deadline = started + 10
            while target.stat().st_mtime_ns == before and time.perf_counter() < deadline:
                time.sleep(0.005)
            values.append(time.perf_counter() - started)
            time.sleep(0.3)
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
        return rows
    first = median([r[0] for r in loads])
    images = median([r[1] for r in loads])
    fetched = median([r[2] for r in loads])
    rows.append((f"review page, {jobs:,} images: load in headless chromium",
                 f"{first * 1000:.0f} ms to the first screen, {images * 1000:.0f} ms to its "
                 "images", f"from file://, median of {len(loads)}; the first screen reads "
                 f"{fetched / 1e3:.0f} KB of {total / 1e6:.1f} MB; target < 1 s"))
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
                        help="noop, incremental, concurrency, preview, watch, page, help, "
                             "remote, display")
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


if __name__ == "__main__":
    main()
