"""The text check measured on synthetic posters: catch rate, false alarms, unreadable, CPU.

    python bench/textcheck.py [--count N] [--chinese N] [--sets dev,validation,test]
                              [--engines both|tesseract] [--out DIR] [--jobs N]

Makes each corpus with `bench/textposters.py` (fonts from Debian packages: installed here
with apt-get when run as root, else listed as missing), checks every poster with the
same `TextChecker` that `qwenbuild check` uses (default engines, default threshold, no
result cache), and prints a Markdown report per corpus:

- misspelled posters flagged (red) and correct posters flagged (red: false alarms), per
  style and per error kind, Latin and Chinese apart;
- unreadable posters per style, counted apart (neither caught nor a false alarm: a
  misspelled poster that ends unreadable is *not* counted as caught);
- CPU seconds per image (this process and its Tesseract children, one image at a time),
  mean, 95th percentile and maximum, and wall seconds.

Three corpora by default: `dev` (seed 1, the fonts the check was developed on),
`validation` (seed 2, held-out fonts: looked at while developing, never tuned on) and
`test` (seed 3, held-out fonts: run for the report only). Nothing here asserts anything:
it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import textposters  # noqa: E402

#: Corpus name: (seed, font set). `dev` is what the check was developed on; `validation`
#: (other seeds, held-out fonts) was looked at while developing; `test` (other seeds
#: again, held-out fonts) is for reporting only.
CORPORA = {"dev": (1, "dev"), "validation": (2, "heldout"), "test": (3, "heldout")}


def ensure_fonts() -> None:
    """Install the corpus's font packages with apt-get when they are missing (as root),
    else stop, naming them."""
    missing = sorted({p for s in textposters.FONT_SETS.values() for g in s.values()
                      for p, _ in g if not Path(p).is_file()})
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing font packages ({len(missing)} fonts missing)", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", *textposters.FONT_PACKAGES],
                       check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return
    raise SystemExit("missing fonts; install: sudo apt-get install "
                     + " ".join(textposters.FONT_PACKAGES))


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def check_corpus(folder: Path, engine, jobs: int) -> list[dict]:
    from qwenbuild.store import Store
    from qwenbuild.textcheck import TextChecker

    posters = json.loads((folder / "corpus.json").read_text())["posters"]
    cache = Path(tempfile.mkdtemp(prefix="qwenbuild-textbench-cache-"))
    checker = TextChecker(engine, Store(cache))
    # Warm up (model loading) on the first poster, outside the measure.
    TextChecker(engine, Store(Path(tempfile.mkdtemp()))).check(
        folder / f"{posters[0]['id']}.png", "warm-up", posters[0]["lines"])

    def one(poster: dict) -> dict:
        path = folder / f"{poster['id']}.png"
        cpu, wall = _cpu(), time.monotonic()
        result = checker.check(path, poster["id"], poster["lines"])
        cpu, wall = _cpu() - cpu, time.monotonic() - wall
        return {**poster, "status": result.status(), "cpu": cpu, "wall": wall,
                "readings": list(result.readings), "unreadable_why": result.unreadable,
                "error_msg": result.error,
                "result_lines": [[x.expected, x.read, x.score, x.verdict, x.source, x.conf]
                                 for x in result.lines]}

    if jobs == 1:  # one image at a time: the CPU measure is the image's own
        out = [one(p) for p in posters]
    else:
        with ThreadPoolExecutor(jobs) as pool:
            out = list(pool.map(one, posters))
    shutil.rmtree(cache, ignore_errors=True)
    return out


def pct(n: int, d: int) -> str:
    return f"{100 * n / d:.0f}% ({n}/{d})" if d else "-"


def report(name: str, results: list[dict], jobs: int) -> str:
    out = [f"### {name}: {len(results)} posters"]
    for script in ("latin", "cjk"):
        rs = [r for r in results if r["script"] == script]
        if not rs:
            continue
        bad = [r for r in rs if r["error"]]
        good = [r for r in rs if not r["error"]]
        out.append(f"\n**{'Latin' if script == 'latin' else 'Chinese'}**: misspelled flagged "
                   f"(red) {pct(sum(r['status'] == 'red' for r in bad), len(bad))}; correct "
                   f"flagged (red) {pct(sum(r['status'] == 'red' for r in good), len(good))}; "
                   f"unreadable: misspelled {sum(r['status'] == 'unreadable' for r in bad)}, "
                   f"correct {sum(r['status'] == 'unreadable' for r in good)}; "
                   f"green while misspelled {sum(r['status'] == 'green' for r in bad)}\n")
        out.append("| style | misspelled red | correct red | unreadable (misspelled / correct) |")
        out.append("| --- | --- | --- | --- |")
        for style in textposters.STYLES:
            b = [r for r in bad if r["style"] == style]
            g = [r for r in good if r["style"] == style]
            out.append(f"| {style} | {pct(sum(r['status'] == 'red' for r in b), len(b))} | "
                       f"{pct(sum(r['status'] == 'red' for r in g), len(g))} | "
                       f"{sum(r['status'] == 'unreadable' for r in b)} / "
                       f"{sum(r['status'] == 'unreadable' for r in g)} |")
        out.append("\n| error kind | red | unreadable | green (missed) |")
        out.append("| --- | --- | --- | --- |")
        kinds: dict[str, list[dict]] = defaultdict(list)
        for r in bad:
            kinds[r["error"]].append(r)
        for kind, rk in sorted(kinds.items()):
            out.append(f"| {kind} | {pct(sum(r['status'] == 'red' for r in rk), len(rk))} | "
                       f"{sum(r['status'] == 'unreadable' for r in rk)} | "
                       f"{sum(r['status'] == 'green' for r in rk)} |")
    cpu = sorted(r["cpu"] for r in results)
    wall = sorted(r["wall"] for r in results)
    p95 = cpu[min(len(cpu) - 1, int(0.95 * len(cpu)))]
    out.append(f"\nCPU per image{' (one image at a time)' if jobs == 1 else ''}: mean "
               f"{statistics.mean(cpu):.2f} s, median {statistics.median(cpu):.2f} s, p95 "
               f"{p95:.2f} s, max {cpu[-1]:.2f} s; wall max {wall[-1]:.2f} s; readings per "
               f"image {statistics.mean(len(r['readings']) for r in results):.2f}; errors "
               f"{sum(r['status'] == 'error' for r in results)}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=160, help="Latin posters per corpus")
    parser.add_argument("--chinese", type=int, default=48, help="Chinese posters per corpus")
    parser.add_argument("--sets", default="dev,validation,test")
    parser.add_argument("--engines", choices=("both", "tesseract"), default="both")
    parser.add_argument("--out", type=Path, help="keep corpora and results here")
    parser.add_argument("--jobs", type=int, default=1,
                        help="images at once (default 1: CPU per image is then exact)")
    args = parser.parse_args(argv)
    if args.engines == "tesseract":
        os.environ["QWENBUILD_OCR"] = "tesseract"
    ensure_fonts()
    from qwenbuild.textcheck import engines

    engine = engines.default_engine()
    work = args.out or Path(tempfile.mkdtemp(prefix="qwenbuild-textbench-"))
    print(f"Engines: {engine.identity()}\n")
    for name in args.sets.split(","):
        folder = work / name
        seed, fonts = CORPORA[name]
        if not (folder / "corpus.json").is_file():
            textposters.make_corpus(folder, args.count, seed, fonts, args.chinese)
        results = check_corpus(folder, engine, args.jobs)
        (folder / f"results-{args.engines}.json").write_text(
            json.dumps(results, ensure_ascii=False, indent=1))
        print(report(f"{name} corpus (seed {seed}, {fonts} fonts)", results, args.jobs))
        print()
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
