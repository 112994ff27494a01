"""`qwenbuild review CAMPAIGN`: serve the review page to record decisions (no build)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .common import EXIT_OK, Parser, print_json

NAME = "review"


def add_parser(sub: Any, parents: list[Parser]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, parents=parents, help="serve the review page to approve, pick and comment",
        description="Serve the review page of a campaign on 127.0.0.1, without building: "
                    "approve, reject and pick outputs, comment, compare with git HEAD and "
                    "zoom to 100 %%. Decisions go to the campaign's review file "
                    "(review.toml beside campaign.toml); open pages follow decisions and "
                    "builds made elsewhere. Ctrl-C stops.")
    p.add_argument("campaign", metavar="CAMPAIGN", help="path to a campaign.toml")
    p.add_argument("--port", type=int, default=8000, metavar="N",
                   help="serve on 127.0.0.1:N (default 8000; 0 picks a free port)")
    p.add_argument("--by", metavar="NAME",
                   help="who decides (default: QWENBUILD_REVIEWER, else git config "
                        "user.name)")
    return p


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    from ..review.actions import ReviewTarget
    from ..review.decisions import ReviewFile, reviewer
    from ..review.server import LiveServer, LiveState

    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    target = ReviewTarget.of(Path(args.campaign))
    ReviewFile.load(target.review_path)  # an invalid review file: say so now
    by = reviewer(target.campaign_path.parent, args.by)
    state = LiveState()
    server = LiveServer(state, args.port)
    server.set_root(target.out, target.name)
    server.set_review(target, by, follow_builds=True)

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate) if stop is None else None
    server.start()
    try:
        if args.json:
            print_json({"event": "serving", "url": server.url, "reviewer": by})
        elif not args.quiet:
            print(f"serving the review page of {args.campaign} at {server.url} "
                  f"(reviewing as {by}; Ctrl-C to stop)", flush=True)
        sys.stdout.flush()
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_OK
