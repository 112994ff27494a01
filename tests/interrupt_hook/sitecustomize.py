"""Loaded by a qwenbuild child process in tests/test_interrupts.py (through PYTHONPATH): it
sends the process a real SIGINT at a precise point, so each Ctrl-C the tests make lands
where they mean it to, however loaded the machine is.

QWENBUILD_TEST_SIGINT holds `;`-separated points:

    import:MODULE                   while MODULE is being imported
    call:MODULE:QUALNAME[:N]        as the N-th call (default 1) of that function starts
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Any

_SPECS = [s for s in os.environ.get("QWENBUILD_TEST_SIGINT", "").split(";") if s]


def _press() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # the handler runs as soon as this returns


def _patch(module: Any, qualname: str, nth: int) -> None:
    owner_name, _, attr = qualname.rpartition(".")
    owner = getattr(module, owner_name) if owner_name else module
    original = getattr(owner, attr)
    calls = [0]

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == nth:
            _press()
        return original(*args, **kwargs)

    setattr(owner, attr, wrapper)


class _Hook:
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        wanted = [s.split(":") for s in _SPECS if s.split(":")[1] == name]
        if not wanted:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            for spec_parts in wanted:
                if spec_parts[0] == "import":
                    _press()
            original(module)
            for spec_parts in wanted:
                if spec_parts[0] == "call":
                    nth = int(spec_parts[3]) if len(spec_parts) > 3 else 1
                    _patch(module, spec_parts[2], nth)

        loader.exec_module = exec_module
        return spec


if _SPECS:
    sys.meta_path.insert(0, _Hook())
