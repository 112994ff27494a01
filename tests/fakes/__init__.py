"""The fake providers: one strict fake per HTTP provider kind, and one way to start them.

`FAKES` maps a provider kind to its fake: the app class, the API key it accepts and the
path its base URL ends with. `FakeProviders` (the `fake_providers` fixture in conftest)
starts any of them on 127.0.0.1 and points `<KIND>_BASE_URL` / `<KIND>_API_KEY` at them.
A new provider adds its fake module and one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import aimlapi, empiriolabs, runware
from .server import FakeApp, FakeServer


@dataclass(frozen=True)
class FakeKind:
    """How to run the fake of one provider kind."""

    make: Callable[[], FakeApp]
    #: The key the fake accepts (a recognisable fake secret: tests grep for it).
    key: str
    #: The environment variables' prefix: `<env>_BASE_URL`, `<env>_API_KEY`.
    env: str
    #: What follows the server's address in the base URL (Runware's is the endpoint).
    path: str = ""


FAKES: dict[str, FakeKind] = {
    "runware": FakeKind(runware.FakeRunware, runware.FAKE_KEY, "RUNWARE", runware.API_PATH),
    "aimlapi": FakeKind(aimlapi.FakeAimlapi, aimlapi.FAKE_KEY, "AIMLAPI"),
    "empiriolabs": FakeKind(empiriolabs.FakeEmpiriolabs, empiriolabs.FAKE_API_KEY,
                            "EMPIRIOLABS"),
}


class FakeProviders:
    """Fakes running on 127.0.0.1, by provider kind; `close()` stops them all."""

    def __init__(self, setenv: Callable[[str, str], Any]) -> None:
        self._setenv = setenv
        self.apps: dict[str, Any] = {}
        self.urls: dict[str, str] = {}
        self._servers: list[FakeServer] = []

    def start(self, *kinds: str) -> dict[str, Any]:
        """Start the fakes of `kinds` (all when none is named) and set their variables;
        returns the apps of every fake started so far, by kind."""
        for kind in kinds or tuple(FAKES):
            if kind in self.apps:
                continue
            fake = FAKES[kind]
            app = fake.make()
            server = FakeServer(app).__enter__()
            self._servers.append(server)
            self.apps[kind] = app
            self.urls[kind] = server.url + fake.path
            self._setenv(f"{fake.env}_BASE_URL", self.urls[kind])
            self._setenv(f"{fake.env}_API_KEY", fake.key)
        return self.apps

    def __getitem__(self, kind: str) -> Any:
        return self.start(kind)[kind]

    def api_calls(self) -> int:
        """Requests to every fake's API (downloads of images not counted)."""
        return sum(len(app.api_requests()) for app in self.apps.values())

    def close(self) -> None:
        for app in self.apps.values():
            release = getattr(app, "release", None)
            if release is not None:
                release()
        for server in reversed(self._servers):
            server.__exit__(None, None, None)
        self._servers.clear()


__all__ = ["FAKES", "FakeKind", "FakeProviders"]
