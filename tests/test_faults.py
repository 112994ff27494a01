"""Provider faults, one at a time, against a real HTTP fake: each job either is retried and
succeeds, or fails with a one-line reason; the rest of the build completes; a failed build
exits 1 and its rerun asks only for the failed job. (Async flows that fail or never finish
are covered per provider in test_provider_runware.py and test_provider_empiriolabs.py.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import SIMPLE_TEMPLATE, build_file_tree
from .fakes import FakeProviders
from .fakes.aimlapi import FakeAimlapi
from .fakes.server import FakeServer, Reply

CAMPAIGN = """\
[campaign]
name = "faults"

[brand]
name = "Acme"

[providers.ai]
kind = "aimlapi"
max_retries = 2
timeout = {timeout}

# The good job has a provider of its own, with all the time it needs on a loaded machine:
# only the faulty job meets the fault (and the short timeout of "answer too slow").
[providers.steady]
kind = "aimlapi"
max_retries = 2
timeout = 120

[[assets]]
id = "good"
template = "poster.j2"
aspects = ["1:1"]
providers = ["steady"]
[assets.copy]
headline = "ALL IS WELL"

[[assets]]
id = "faulty"
template = "poster.j2"
aspects = ["1:1"]
providers = ["ai"]
[assets.copy]
headline = "FAULTY ONE"
"""


@pytest.fixture
def fake(fake_providers: FakeProviders) -> FakeAimlapi:
    app: FakeAimlapi = fake_providers["aimlapi"]
    return app


def _ok_answer(app: FakeAimlapi, image: bytes | None = None, url: str | None = None) -> Reply:
    if url is None:
        url = app.add_file(f"f{len(app.files)}.png", image if image is not None
                           else app.png(1440, 1440))
    return Reply(200, {"created": 1, "data": [{"url": url}],
                       "meta": {"usage": {"credits_used": 1, "usd_spent": 0.0455}}})


def _faulty_posts(app: FakeAimlapi) -> int:
    return sum(1 for body in app.generations() if "FAULTY ONE" in body["prompt"])


#: Faults particular to this file; the ones every provider shares (a reset, an HTML error
#: page, 5xx, a slow answer, an answer without an image, a 2xx that is not JSON, corrupt
#: bytes) are in test_provider_contract.py, for every provider.
RETRIED: dict[str, tuple[Callable[[FakeAimlapi], list[Reply]], int]] = {
    "429 storm": (lambda app: [Reply(429, {"message": "Too many requests", "statusCode": "429"},
                                     {"Retry-After": "1"})] * 2, 3),
}


@pytest.mark.parametrize("name", sorted(RETRIED))
def test_transient_faults_are_retried_then_built(name: str, tmp_path: Path, run,
                                                 fake: FakeAimlapi) -> None:
    make, posts = RETRIED[name]
    for reply in make(fake):
        fake.prompt_faults.append(("FAULTY ONE", reply))
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": CAMPAIGN.format(timeout=120)})
    result = run("build", tmp_path / "campaign.toml", "--json")
    assert result.code == 0, result.err
    assert result.json()["generated"] == 2
    assert _faulty_posts(fake) == posts


FAILED: dict[str, tuple[Callable[[FakeAimlapi], Reply], str, int]] = {
    # Paid already: the download is retried, the generation never.
    "image URL answering 404": (
        lambda app: _ok_answer(app, url=f"{app.base_url}/files/missing.png"),
        "image URL answered HTTP 404", 1),
    "image that is not an image at all": (
        lambda app: _ok_answer(app, image=b"<html>hello</html>"), "not a valid image", 1),
}


@pytest.mark.parametrize("name", sorted(FAILED))
def test_faults_fail_only_their_job_with_one_line(name: str, tmp_path: Path, run,
                                                  fake: FakeAimlapi, cache_dir: Path) -> None:
    make, message, posts = FAILED[name]
    for _ in range(posts):
        fake.prompt_faults.append(("FAULTY ONE", make(fake)))
    # Only the slow answer needs a short timeout; the others must never meet one, however
    # loaded the machine is.
    timeout = 1 if name == "answer too slow" else 120
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": CAMPAIGN.format(timeout=timeout)})
    campaign = tmp_path / "campaign.toml"
    result = run("build", campaign, "--json")
    assert result.code == 1
    report = result.json()
    by_asset = {j["asset"]: j for j in report["jobs"]}
    assert by_asset["good"]["status"] == "generated"
    assert by_asset["faulty"]["status"] == "failed"
    assert message in by_asset["faulty"]["error"]
    assert "\n" not in by_asset["faulty"]["error"]
    line = f"failed: ai faulty 1:1 seed {by_asset['faulty']['seed']}: "
    assert any(ln.startswith(line) and message in ln for ln in result.err.splitlines())
    assert _faulty_posts(fake) == posts
    assert not (tmp_path / "out" / "1x1" / "ai" / "faulty.png").exists()
    # Nothing of the failed job entered the cache: only the good image is there.
    assert len(list((cache_dir / "objects").rglob("*.png"))) == 1

    # The rerun asks for the failed job only.
    fake.prompt_faults.clear()
    good_posts = len(fake.generations()) - _faulty_posts(fake)
    rerun = run("build", campaign, "--json")
    assert rerun.code == 0, rerun.err
    assert len(fake.generations()) - _faulty_posts(fake) == good_posts
    assert _faulty_posts(fake) == posts + 1


def test_a_slow_provider_does_not_hold_back_another(tmp_path: Path, run,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Providers run side by side: jobs queued for a provider at concurrency 1 must not take
    the build-wide slots that another provider, at concurrency 4, could use."""
    import threading

    from .fakes.aimlapi import FAKE_KEY

    class Counting(FakeAimlapi):
        def __init__(self) -> None:
            super().__init__()
            self.in_flight = self.peak = 0
            self.gauge = threading.Lock()

        def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
            with self.gauge:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                return super().route(method, path, headers, body)
            finally:
                with self.gauge:
                    self.in_flight -= 1

    slow, fast = Counting(), Counting()
    slow.latency = fast.latency = 0.3
    with FakeServer(slow) as s_server, FakeServer(fast) as f_server:
        monkeypatch.setenv("AIMLAPI_API_KEY", FAKE_KEY)
        assets = "".join(f'[[assets]]\nid = "a{i}"\n[assets.copy]\nheadline = "A {i}"\n\n'
                         for i in range(8))
        build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE, "campaign.toml": (
            '[campaign]\nname = "two"\n[brand]\nname = "B"\n'
            f'[providers.slow]\nkind = "aimlapi"\nconcurrency = 1\nbase_url = "{s_server.url}"\n'
            f'[providers.fast]\nkind = "aimlapi"\nconcurrency = 4\nbase_url = "{f_server.url}"\n'
            '[defaults]\ntemplate = "poster.j2"\naspects = ["1:1"]\n'
            'providers = ["slow", "fast"]\n\n' + assets)})
        result = run("build", tmp_path / "campaign.toml", "--json")
    assert result.code == 0, result.err
    assert slow.peak == 1
    assert fast.peak == 4


@pytest.mark.parametrize(("url", "message"), [
    ("file:///etc/passwd", "refusing to download a file URL"),
    ("ftp://127.0.0.1/image.png", "refusing to download a ftp URL"),
    ("redirect-to-file", "refusing to download a file URL"),
    ("too-large", "over the 20000 byte cap"),
])
def test_downloads_are_http_only_and_size_capped(url: str, message: str, tmp_path: Path, run,
                                                 fake: FakeAimlapi,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import qwenbuild.providers.http as http

    monkeypatch.setattr(http, "MAX_IMAGE_BYTES", 20000)
    if url == "redirect-to-file":
        fake.faults.append(("/files/hop.png", Reply(302, b"", {"Location": "file:///etc/passwd"})))
        url = f"{fake.base_url}/files/hop.png"
    elif url == "too-large":
        url = fake.add_file("big.png", fake.png(1440, 1440) + b"\0" * 30000)
    fake.prompt_faults.append(("FAULTY ONE", _ok_answer(fake, url=url)))
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": CAMPAIGN.format(timeout=120)})
    result = run("build", tmp_path / "campaign.toml", "--json")
    assert result.code == 1
    jobs = {j["asset"]: j for j in result.json()["jobs"]}
    assert jobs["good"]["status"] == "generated"
    assert jobs["faulty"]["status"] == "failed"
    assert message in jobs["faulty"]["error"], jobs["faulty"]["error"]


def test_an_image_of_the_wrong_size_fails_its_job_and_is_kept_aside(
        tmp_path: Path, run, fake: FakeAimlapi, cache_dir: Path) -> None:
    """Issue 16: a 64x48 image for a 1440x1440 request is no answer. The job fails, the
    image (paid for) is kept in the store's quarantine for inspection, and nothing of it
    reaches the outputs, the manifest or the cache entries a rerun would restore."""
    from .fakes.server import png_bytes

    fake.prompt_faults.append(("FAULTY ONE", _ok_answer(fake, image=png_bytes(64, 48))))
    build_file_tree(tmp_path, {"templates/poster.j2": SIMPLE_TEMPLATE,
                               "campaign.toml": CAMPAIGN.format(timeout=30)})
    campaign = tmp_path / "campaign.toml"
    result = run("build", campaign, "--json")
    assert result.code == 1
    jobs = {j["asset"]: j for j in result.json()["jobs"]}
    assert jobs["good"]["status"] == "generated"
    faulty = jobs["faulty"]
    assert faulty["status"] == "failed"
    assert "the image is 64x48, not the 1440x1440 asked for" in faulty["error"]
    assert "kept for inspection" in faulty["error"]
    assert result.json()["cost_usd"] == pytest.approx(2 * 0.0455)  # both were paid
    assert not (tmp_path / "out" / "1x1" / "ai" / "faulty.png").exists()
    kept = cache_dir / "quarantine" / f"{faulty['key']}.png"
    assert kept.read_bytes() == png_bytes(64, 48)
    assert not list((cache_dir / "objects").rglob(f"{faulty['key']}*"))

    # The rerun generates it again (it was never a usable image) and `cache gc` collects
    # the quarantined one.
    again = run("build", campaign, "--json")
    assert again.code == 0, again.err
    assert {j["asset"]: j["status"] for j in again.json()["jobs"]} == {
        "good": "up_to_date", "faulty": "generated"}
    assert run("cache", "gc", tmp_path).code == 0
    assert not kept.exists()
