"""The command line: parse arguments, call the library, map errors to exit codes.

Exit codes: 0 all built, 1 some jobs failed, 2 invalid campaign or usage, 130 interrupted.
Imports of the library happen inside the commands so `qwenbuild --help` starts quickly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, NoReturn, TextIO

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_INPUT, f"ERROR: {message}\n")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="qwenbuild",
        description="A declarative build system for design assets made with Qwen-Image models.",
        epilog="Exit codes: 0 all built, 1 some jobs failed, 2 invalid campaign or usage.",
    )
    parser.add_argument("--version", action="version", version=f"qwenbuild {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("campaign", metavar="CAMPAIGN", help="path to a campaign.toml")
        p.add_argument("--only", action="append", default=[], metavar="GLOB",
                       help="only assets whose id matches GLOB (repeatable)")
        p.add_argument("--provider", action="append", default=[], metavar="NAME",
                       help="only jobs of this provider (repeatable)")
        p.add_argument("--aspect", action="append", default=[], metavar="RATIO",
                       help="only jobs of this aspect ratio, e.g. 9:16 (repeatable)")
        p.add_argument("--json", action="store_true",
                       help="print one JSON object on stdout when done")
        p.add_argument("-v", "--verbose", action="store_true",
                       help="log details, and show tracebacks of errors")

    p_build = sub.add_parser("build", help="generate what changed, restore what is cached",
                             description="Build a campaign: generate only what changed.")
    common(p_build)
    p_build.add_argument("--force", action="store_true",
                         help="generate every selected job again, even when cached (pays again)")
    p_build.add_argument("-j", "--jobs", type=int, metavar="N",
                         help="at most N jobs in flight across providers")
    p_build.add_argument("--budget", type=float, metavar="USD",
                         help="stop before any request when the estimated cost is over USD "
                              "(overrides the campaign's budget)")
    p_build.add_argument("--verify-text", action="store_true",
                         help="read the text of each image back (OCR) and generate an image "
                              "whose text reads wrong (red) again, with a new seed")
    p_build.add_argument("--min-score", type=float, default=1.0, metavar="S",
                         help="with --verify-text: a line read wrong passes (amber) when its "
                              "score, 1 - edits/letters, is at least S (0..1, default 1: "
                              "no wrong letter passes)")
    p_build.add_argument("--max-rerolls", type=int, default=2, metavar="N",
                         help="with --verify-text: new seeds to try per image (default 2)")

    p_check = sub.add_parser(
        "check", help="read the text in each output back and score it against the copy",
        description="OCR every built output, score each expected line (expect_text, else "
                    "the copy's headline and subtitle), record the verdicts in "
                    "manifest.json; exit 1 when an image reads wrong (red), 3 when none "
                    "does but one is unreadable, else 0.")
    common(p_check)
    # Declared here, not by importing the text check: `qwenbuild --help` must start quickly.
    p_check.add_argument("--min-score", type=float, default=1.0, metavar="S",
                         help="a line read wrong passes (amber) when its score, "
                              "1 - edits/letters, is at least S (0..1, default 1: one wrong "
                              "letter is red)")

    p_plan = sub.add_parser("plan", help="show what a build would do, job by job",
                            description="Show what a build would do and why, without doing it.")
    common(p_plan)
    p_plan.add_argument("--check", action="store_true",
                        help="for CI: exit 1, listing what and why, when anything would be "
                             "generated, restored or rendered or an output is stale, missing "
                             "or modified; never writes anything")

    p_watch = sub.add_parser(
        "watch", help="build, then rebuild on every change and serve a live review page",
        description="Build a campaign, then watch the campaign file, its template folders "
                    "and its reference images, and rebuild what an edit affects. The review "
                    "page (<out>/index.html) is served on 127.0.0.1 and reloads itself after "
                    "each rebuild. Ctrl-C stops.")
    p_watch.add_argument("campaign", metavar="CAMPAIGN", help="path to a campaign.toml")
    p_watch.add_argument("--port", type=int, default=8000, metavar="N",
                         help="serve the review page on 127.0.0.1:N (default 8000; 0 picks a "
                              "free port)")
    p_watch.add_argument("--no-serve", action="store_true",
                         help="only watch and rebuild; do not serve the page")
    p_watch.add_argument("--max-jobs", type=int, default=20, metavar="N",
                         help="refuse a rebuild that would send more than N jobs to a paid "
                              "provider (default 20)")
    p_watch.add_argument("-v", "--verbose", action="store_true",
                         help="log details, and show tracebacks of errors")

    p_prov = sub.add_parser("providers", help="list provider kinds, models, sizes and prices",
                            description="List provider kinds, their models, the size each "
                                        "aspect resolves to, price per image, and whether "
                                        "each API key is set.")
    p_prov.add_argument("--json", action="store_true", help="print JSON")
    p_prov.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)

    from .cli_repo import add_repo_commands

    add_repo_commands(sub)  # init, clean, cache gc, inspect, schema
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    from .errors import QwenbuildError

    try:
        commands = {"build": cmd_build, "plan": cmd_plan, "providers": cmd_providers,
                    "watch": cmd_watch, "check": cmd_check}
        from .cli_repo import REPO_COMMANDS

        commands.update(REPO_COMMANDS)
        return commands[args.command](args)
    except QwenbuildError as exc:
        if args.verbose:
            logging.getLogger("qwenbuild").exception("error")
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours: say so plainly, traceback only with -v
        if args.verbose:
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)")
        return EXIT_FAILED


def _color(stream: TextIO) -> bool:
    from .progress import colour_enabled

    return colour_enabled(stream)


def _paint(text: str, code: str, stream: TextIO) -> str:
    return f"\033[{code}m{text}\033[0m" if _color(stream) else text


def _error(message: str) -> None:
    lines = message.splitlines() or [""]
    for line in lines:
        print(_paint("ERROR:", "31;1", sys.stderr), line, file=sys.stderr)


def _selection(args: argparse.Namespace) -> Any:
    from .plan import Selection
    from .sizes import ASPECTS

    from .errors import UsageError

    bad = [a for a in args.aspect if a not in ASPECTS]
    if bad:
        raise UsageError([f"--aspect {a}: unsupported aspect ratio (supported: "
                          f"{', '.join(ASPECTS)})" for a in bad])
    return Selection(tuple(args.only), tuple(args.provider), tuple(args.aspect))


def cmd_plan(args: argparse.Namespace) -> int:
    from .campaign import load_campaign
    from .costs import usd
    from .survey import survey

    campaign = load_campaign(args.campaign)
    # --check is for CI: it must not write even the machine-local key memo.
    found = survey(campaign, _selection(args), remember=not args.check)
    pending = found.pending()
    out = sys.stdout
    if args.json:
        print(json.dumps(found.to_json(), indent=2, ensure_ascii=False))
    elif args.check:
        for what, path, why in pending:
            print(f"{_paint(what, '33', out):>10}  {path}  ({why})", file=out)
    else:
        marks = {"build": ("build", "33"), "cached": ("cached", "36"), "up_to_date": ("ok", "32"),
                 "render": ("render", "33")}
        for a in found.assessments:
            print(f"{_paint(*marks[a.status], out):>10}  {_rel(campaign, a.job.output)}  "
                  f"({a.reason})", file=out)
        for e in found.exports:
            print(f"{_paint(*marks[e.status], out):>10}  {_rel(campaign, e.job.output)}  "
                  f"({e.reason})", file=out)
        for rel in (*found.stale, *found.stale_exports):
            print(f"{_paint('stale', '35', out):>10}  {_rel(campaign, rel)}  "
                  "(no longer in the campaign; qwenbuild clean removes it)", file=out)
        stale = len(found.stale) + len(found.stale_exports)
        print(f"{len(found.assessments)} jobs: {found.count('build')} to generate, "
              f"{found.count('cached')} from cache, {found.count('up_to_date')} up to date"
              + (f", {stale} stale" if stale else ""), file=out)
        cost = f"estimated cost {usd(found.estimate.usd)}"
        if campaign.budget is not None:
            over = found.estimate.usd > campaign.budget
            cost += (f" (budget {usd(campaign.budget)}"
                     + ("; over it: build will refuse)" if over else ")"))
        print(cost, file=out)
    if args.check:
        if pending:
            _error(f"{campaign.shown}: {len(pending)} outputs do not match the campaign; run "
                   f"qwenbuild build (and qwenbuild clean for stale ones), then commit")
            return EXIT_FAILED
        if not args.json:
            print(f"{campaign.shown}: all {len(found.assessments)} outputs and "
                  f"{len(found.exports)} exports up to date", file=out)
    return EXIT_OK


def _rel(campaign: Any, output: str) -> str:
    return os.path.relpath(campaign.out / output, campaign.root).replace(os.sep, "/")


def cmd_build(args: argparse.Namespace) -> int:
    from .build import BuildOptions, build
    from .campaign import load_campaign
    from .errors import UsageError
    from .progress import Progress

    if args.jobs is not None and args.jobs < 1:
        raise UsageError("-j/--jobs must be at least 1")
    if args.budget is not None and not 0 <= args.budget < float("inf"):
        raise UsageError("--budget must be a number of USD, 0 or more")
    from .textcheck.run import min_score_arg

    if args.max_rerolls < 0:
        raise UsageError("--max-rerolls must be 0 or more")
    min_score = min_score_arg(args.min_score)
    campaign = load_campaign(args.campaign)
    progress = Progress(campaign, quiet=args.json, stream=sys.stderr if args.json else sys.stdout)
    report = build(campaign, _selection(args), BuildOptions(
        force=args.force, jobs=args.jobs, on_event=progress.event, on_plan=progress.start,
        budget_usd=args.budget, verify_text=args.verify_text,
        min_score=min_score, max_rerolls=args.max_rerolls))
    progress.finish(report)
    if report.exports and not args.json:
        for rel in report.exports:
            print(f"{_paint('exported', '32', sys.stdout):>10}  {_rel(campaign, rel)}")
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    if report.interrupted:
        unfinished = [r for r in report.failed if r.error == "interrupted before it finished"]
        _error(f"interrupted: {len(report.results) - len(unfinished)} jobs finished and are "
               f"kept, {len(unfinished)} did not finish; run the build again to resume")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.failed else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """`qwenbuild check`: OCR the outputs and score their text (qwenbuild/textcheck/run.py)."""
    from .textcheck.run import command

    return command(args, _selection(args))


def cmd_watch(args: argparse.Namespace) -> int:
    import signal

    from .errors import UsageError
    from .watch import watch

    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if args.max_jobs < 0:
        raise UsageError("--max-jobs must be 0 or more")

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # a service manager's stop ends the watch like Ctrl-C does

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        # Returns on Ctrl-C (after a clean shutdown): ending a watch is not a failure.
        watch(args.campaign, port=args.port, serve=not args.no_serve, max_jobs=args.max_jobs)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def cmd_providers(args: argparse.Namespace) -> int:
    from .providers import KINDS, provider_class
    from .providers.base import ProviderSpec
    from .sizes import ASPECTS

    rows = []
    for kind in KINDS:
        cls = provider_class(kind)
        for model_id, info in cls.models.items():
            provider = cls(ProviderSpec(name=kind, kind=kind, model=model_id, concurrency=1,
                                        options={}))
            sizes = {a: "x".join(map(str, provider.size_for(a))) for a in ASPECTS
                     if provider.supports_aspect(a)}
            key_env = cls.api_key_env
            rows.append({
                "kind": kind, "model": model_id, "title": info.title,
                "price_usd": info.price_usd, "sizes": sizes,
                "api_key_env": key_env,
                "api_key_set": bool(os.environ.get(key_env)) if key_env else None,
                "base_url_env": cls.base_url_env,
                "options": sorted(k for k, o in cls.options.items()
                                  if o.models is None or model_id in o.models),
            })
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        key = ("no key needed" if row["api_key_env"] is None else
               f"{row['api_key_env']} {'set' if row['api_key_set'] else 'NOT set'}")
        print(f"{row['kind']:<12} {row['model']:<28} ${row['price_usd']:<7.4f} {key}")
        print("    " + "  ".join(f"{a} {s}" for a, s in row["sizes"].items()))
        if row["options"]:
            print("    options: " + ", ".join(row["options"]))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
