"""The team cache, against a real SeaweedFS (tests/seaweedfs.py): one payer per image
among machines, read-only builds, verified downloads, a remote that fails, pull, shards,
clear configuration errors, and credentials that never appear anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import obstore
import pytest

from qwenbuild.cli import main
from qwenbuild.store import ClaimState, Store
from qwenbuild.store.remote import Remote, RemoteConfig, remote_config

from . import test_text_repair as repair_tests
from .conftest import SIMPLE_TEMPLATE, Team, build_file_tree
from .fakes.aimlapi import FakeAimlapi
from .fakes.server import FakeServer, png_bytes
from .seaweedfs import RO_SECRET, RW_SECRET, SeaweedFS
from .test_key_locks import shared_campaign
from .test_textcheck import needs_ocr
from .test_verify_text import CAMPAIGN as VERIFY_CAMPAIGN
from .test_verify_text import GOOD, MISSPELLED, answer
from .test_verify_text import OUTPUT as VERIFY_OUTPUT

SECRET = "sk-teamcache-SECRET-9b3d5f7a1c"
#: A secret the remote refuses: it must not appear anywhere either.
WRONG_SECRET = "qb-wrong-SECRET-0f1e2d3c4b5a6978"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAimlapi]:
    app = FakeAimlapi(key=SECRET)
    with FakeServer(app) as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
        yield app


def posts(app: FakeAimlapi) -> int:
    return sum(1 for r in app.requests if r.method == "POST")


#: Everything every command printed, for the secret scan.
OUTPUT: list[str] = []


class Run:
    """A finished subprocess build (or plan, or pull)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.out, self.err = proc.communicate(timeout=180)
        self.code = proc.returncode
        OUTPUT.append(self.out + self.err)

    def json(self) -> dict:
        return json.loads(self.out)


def start(*args: str | Path, cache: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, **(env or {})}
    if cache is not None:
        full["QWENBUILD_CACHE_DIR"] = str(cache)
    return subprocess.Popen([sys.executable, "-m", "qwenbuild", *[str(a) for a in args]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full)


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    """The CLI in this process (a subprocess costs a second of start-up), with its own
    cache folder and environment for the call."""

    def call(*args: str | Path, cache: Path | None = None,
             env: dict[str, str] | None = None) -> Ran:
        with monkeypatch.context() as m:
            if cache is not None:
                m.setenv("QWENBUILD_CACHE_DIR", str(cache))
            for name, value in (env or {}).items():
                m.setenv(name, value)
            capsys.readouterr()
            code = main([str(a) for a in args])
            captured = capsys.readouterr()
        OUTPUT.append(captured.out + captured.err)
        return Ran(code, captured.out, captured.err)

    return call


def assert_no_secret(*roots: Path, texts: list[str] | None = None) -> None:
    """No credential in any file under `roots`, nor in any output."""
    secrets = [RW_SECRET, RO_SECRET, WRONG_SECRET, SECRET]
    for text in (texts or []) + OUTPUT:
        for secret in secrets:
            assert secret not in text
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in secrets:
                    assert secret.encode() not in data, f"{secret} in {path}"


def clone(source: Path, target: Path) -> Path:
    """A copy of a campaign folder as git would give it: campaign, templates, manifest; no
    images."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.png", "index.html"))
    return target / "campaign.toml"


def outputs(campaign: Path) -> dict[str, bytes]:
    out = campaign.parent / "out"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}


# -- one payer among machines ---------------------------------------------------------------


def test_three_machines_one_remote_pay_once_and_a_fourth_pays_nothing(
        tmp_path: Path, team: Team, fake: FakeAimlapi,
        run: Callable[..., Ran]) -> None:
    """Three builds at once of one 60-job campaign, three local caches, one team cache:
    exactly 60 generation requests in all, identical manifests. A fourth machine with an
    empty cache then builds with 0 requests."""
    fake.latency = 0.2
    campaigns = [shared_campaign(tmp_path / f"m{i}", assets=30) for i in range(3)]
    procs = [start("build", c, "--json", cache=tmp_path / f"cache{i}")
             for i, c in enumerate(campaigns)]
    runs = [Run(p) for p in procs]
    for r in runs:
        assert r.code == 0, r.err
    assert posts(fake) == 60
    reports = [r.json() for r in runs]
    assert sum(r["generated"] for r in reports) == 60
    assert all(r["generated"] + r["cached"] == 60 for r in reports)
    manifests = {(c.parent / "out" / "manifest.json").read_bytes() for c in campaigns}
    assert len(manifests) == 1
    assert not [n for n in team.objects() if "/leases/" in n]  # every lease released

    fourth = clone(campaigns[0].parent, tmp_path / "m3")
    shutil.rmtree(fourth.parent / "out")
    later = run("build", fourth, "--json", cache=tmp_path / "cache3")
    assert later.code == 0, later.err
    assert posts(fake) == 60
    assert later.json()["cached"] == 60
    assert (fourth.parent / "out" / "manifest.json").read_bytes() in manifests
    assert_no_secret(tmp_path)


def test_a_live_lease_is_waited_for_then_taken_over(tmp_path: Path, team: Team,
                                                    fake: FakeAimlapi,
        run: Callable[..., Ran]) -> None:
    """Another machine holds the lease of a key and dies: the build waits (and says so)
    until the lease ends, then takes it over and pays once."""
    campaign = shared_campaign(tmp_path, assets=1)
    plan = run("plan", campaign, "--json", "--aspect", "1:1", cache=tmp_path / "c")
    key = plan.json()["jobs"][0]["key"]
    lease = {"key": key, "holder": "laptop-7 pid 4242", "token": "x",
             "expires": time.time() + 5}
    obstore.put(team.server.client(), f"{team.prefix}/leases/{key}.json",
                json.dumps(lease).encode(), mode="create")
    result = run("build", campaign, "--aspect", "1:1", cache=tmp_path / "c")
    assert result.code == 0, result.err
    assert "waiting" in result.out and "laptop-7 pid 4242" in result.out
    assert "then this build takes over" in result.out
    assert posts(fake) == 1
    assert f"{team.prefix}/leases/{key}.json" not in team.objects()


def test_an_ended_lease_is_taken_over_at_once(tmp_path: Path, team: Team,
                                              fake: FakeAimlapi,
        run: Callable[..., Ran]) -> None:
    campaign = shared_campaign(tmp_path, assets=1)
    key = run("plan", campaign, "--json", "--aspect", "1:1",
              cache=tmp_path / "c").json()["jobs"][0]["key"]
    obstore.put(team.server.client(), f"{team.prefix}/leases/{key}.json",
                json.dumps({"holder": "gone", "expires": time.time() - 5}).encode())
    result = run("build", campaign, "--aspect", "1:1", cache=tmp_path / "c")
    assert result.code == 0, result.err
    assert "waiting" not in result.out
    assert posts(fake) == 1


def test_claims_across_two_machines(tmp_path: Path, team: Team) -> None:
    """The lease abstraction itself: a second machine finds the key busy (with holder and
    end), then finds the image once the first has stored it and released."""
    config = remote_config(tmp_path)
    assert config is not None and config.writable
    a, b = Store(tmp_path / "a", Remote(config)), Store(tmp_path / "b", Remote(config))
    key = "cd" * 32
    mine = a.claim(key, "png", ttl=60)
    assert mine.state == ClaimState.MINE
    busy = b.claim(key, "png", ttl=60)
    assert busy.state == ClaimState.BUSY and busy.expires is not None
    assert "pid" in busy.holder and busy.expires > time.time() + 50
    from qwenbuild.contracts import CacheRecord
    from qwenbuild.images import verify_image

    a.put(key, verify_image(png_bytes(), "png"), CacheRecord(key=key))
    a.release(mine)
    assert b.claim(key, "png", ttl=60).state == ClaimState.HIT
    assert b.load(key, "png") is not None


# -- read-only, verification, faults ------------------------------------------------------


def test_a_read_only_build_reads_the_team_images_and_writes_no_object(
        tmp_path: Path, team: Team, fake: FakeAimlapi,
        run: Callable[..., Ran]) -> None:
    shared = shared_campaign(tmp_path / "ci", assets=2)
    assert run("build", shared, cache=tmp_path / "ci-cache").code == 0
    before = team.objects()
    assert len(before) == 8 and posts(fake) == 4
    # A laptop with read-only credentials: restores the team's images, pays for none.
    laptop = clone(shared.parent, tmp_path / "laptop")
    shutil.rmtree(laptop.parent / "out")
    ro = team.env("ro")
    result = run("build", laptop, "--json", "--remote", "read", cache=tmp_path / "lc", env=ro)
    assert result.code == 0, result.err
    assert result.json()["cached"] == 4 and posts(fake) == 4
    # What it generates stays local: no object written, no lease taken.
    laptop.write_text(laptop.read_text().replace("HEADLINE 1", "HEADLINE ONE"))
    result = run("build", laptop, "--json", cache=tmp_path / "lc",
                 env={**ro, "QWENBUILD_REMOTE_MODE": "read"})
    assert result.code == 0, result.err
    assert result.json()["generated"] == 2 and posts(fake) == 6
    assert "WARNING" not in result.err
    assert team.objects() == before
    # Read-write mode with read-only credentials: a warning, and still nothing written.
    laptop.write_text(laptop.read_text().replace("HEADLINE 0", "HEADLINE ZERO"))
    result = run("build", laptop, cache=tmp_path / "lc", env=ro)
    assert result.code == 0, result.err
    assert result.err.count("refused a write") == 1
    assert team.objects() == before
    assert_no_secret(tmp_path)


def test_a_corrupted_remote_object_is_detected_and_not_used(tmp_path: Path, team: Team,
                                                           fake: FakeAimlapi,
        run: Callable[..., Ran]) -> None:
    campaign = shared_campaign(tmp_path / "a", assets=1)
    assert run("build", campaign, cache=tmp_path / "ca").code == 0
    assert posts(fake) == 2
    client = team.server.client()
    images = sorted(n for n in team.objects() if n.endswith(".png"))
    bad = png_bytes(64, 48, (0, 255, 0))  # a valid image, but not the one recorded
    obstore.put(client, images[0], bad)
    other = clone(campaign.parent, tmp_path / "b")
    shutil.rmtree(other.parent / "out")
    result = run("build", other, "--json", cache=tmp_path / "cb")
    assert result.code == 0, result.err
    key = images[0].rsplit("/", 1)[1].split(".")[0]
    assert f"team cache entry {key}: its image does not match the sha256" in result.err
    report = result.json()
    assert (report["generated"], report["cached"]) == (1, 1)
    assert posts(fake) == 3
    assert all(bad != data for data in outputs(other).values())
    # The build wrote the verified image through: the team cache is whole again.
    assert bytes(obstore.get(client, images[0]).bytes()) != bad


def test_an_image_that_fails_verification_is_never_uploaded(
        tmp_path: Path, team: Team, fake: FakeAimlapi, run: Callable[..., Ran]) -> None:
    fake.corrupt = True  # truncated PNGs
    campaign = shared_campaign(tmp_path, assets=1)
    result = run("build", campaign, "--json", cache=tmp_path / "c")
    assert result.code == 1
    assert all("not a valid image" in j["error"] for j in result.json()["jobs"])
    assert team.objects() == {}  # no image, no record, and every lease released
    fake.corrupt = False
    assert run("build", campaign, cache=tmp_path / "c").code == 0
    assert len([n for n in team.objects() if n.endswith(".png")]) == 2


def test_the_remote_going_down_mid_build_leaves_the_build_successful(
        tmp_path: Path, fake: FakeAimlapi, monkeypatch: pytest.MonkeyPatch) -> None:
    server = SeaweedFS(tmp_path / "seaweedfs").start()
    try:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        fake.latency = 0.3
        campaign = shared_campaign(tmp_path / "a", assets=8, concurrency=2)
        cache = tmp_path / "cache"
        proc = start("build", campaign, "--json", cache=cache)
        deadline = time.monotonic() + 60
        while len(list((cache / "objects").rglob("*.json"))) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.kill()  # at once: 14 jobs (2 s at least) are still to come
        result = Run(proc)
    finally:
        server.stop()
    assert result.code == 0, result.err
    report = result.json()
    assert report["generated"] == 16 and not report["failed"]
    assert posts(fake) == 16
    warnings = [line for line in result.err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "team cache" in warnings[0], result.err
    assert "going on with the local cache only" in warnings[0]
    assert_no_secret(tmp_path / "a", cache)


def test_an_unreachable_remote_warns_once_and_an_up_to_date_build_never_calls_it(
        tmp_path: Path, fake: FakeAimlapi, monkeypatch: pytest.MonkeyPatch,
        run: Callable[..., Ran]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("QWENBUILD_REMOTE_CACHE", "s3://team/x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKE000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)
    campaign = shared_campaign(tmp_path, assets=2)
    first = run("build", campaign, cache=tmp_path / "c")
    assert first.code == 0, first.err
    assert first.err.count("WARNING") == 1 and "unreachable" in first.err
    assert posts(fake) == 4
    # Up to date: nothing to ask the team cache, so nothing is asked (no warning either).
    again = run("build", campaign, cache=tmp_path / "c")
    assert again.code == 0 and "WARNING" not in again.err
    assert_no_secret(tmp_path)


# -- configuration errors: exit 2 before any paid request ----------------------------------


@pytest.mark.parametrize(("env", "toml", "expected"), [
    ({"QWENBUILD_REMOTE_CACHE": "https://bucket.example/x"}, None, "is not an s3:// URL"),
    ({"QWENBUILD_REMOTE_CACHE": "s3://Bad_Bucket/x"}, None, "is not a valid bucket name"),
    ({"QWENBUILD_REMOTE_CACHE": f"s3://user:{WRONG_SECRET}@team/x"}, None,
     "holds credentials"),
    ({"QWENBUILD_REMOTE_CACHE": "s3://team/a/../b"}, None, "must be plain folder names"),
    ({}, '[cache]\nremote = "s3://team/x"\nmode = "sometimes"\n',
     "is not a remote cache mode"),
    ({}, '[cache]\nremote = "s3://team/x"\nbucket = "x"\n', "[cache] bucket: unknown key"),
    ({}, "[cache\n", "not valid TOML"),
    ({"AWS_ENDPOINT_URL": "ftp://127.0.0.1:1"}, None, "must be http(s)://HOST[:PORT]"),
    ({"QWENBUILD_REMOTE_CACHE": "s3://no-such-bucket/x"}, None,
     "the bucket 'no-such-bucket' does not exist"),
    ({"AWS_SECRET_ACCESS_KEY": WRONG_SECRET}, None, "refused the credentials"),
    ({"AWS_ACCESS_KEY_ID": "QBUNKNOWNKEY0000"}, None, "refused the credentials"),
])
def test_a_team_cache_that_cannot_work_is_exit_2_before_any_request(
        tmp_path: Path, team: Team, fake: FakeAimlapi, env: dict[str, str],
        toml: str | None, expected: str,
        run: Callable[..., Ran]) -> None:
    campaign = shared_campaign(tmp_path, assets=1)
    if toml is not None:
        (tmp_path / ".git").mkdir()  # the repository root, where qwenbuild.toml lives
        (tmp_path / "qwenbuild.toml").write_text(toml)
    result = run("build", campaign, cache=tmp_path / "c", env=env)
    assert result.code == 2, result.err
    assert expected in result.err
    assert "<?xml" not in result.err and "<Error>" not in result.err  # what S3 said, in words
    assert posts(fake) == 0
    assert not (campaign.parent / "out" / "manifest.json").exists()
    assert_no_secret(tmp_path)


def test_remote_configuration_precedence(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qwenbuild.toml").write_text('[cache]\nremote = "s3://team/from-file"\n'
                                             'mode = "read"\n')
    config = remote_config(tmp_path)
    assert config == RemoteConfig("team", "from-file", config.access, config.source)
    assert not config.writable and "qwenbuild.toml" in config.source
    assert remote_config(tmp_path, "off") is None
    assert remote_config(tmp_path, "read-write").writable  # type: ignore[union-attr]
    monkeypatch.setenv("QWENBUILD_REMOTE_CACHE", "s3://other/p/q/")
    config = remote_config(tmp_path)
    assert config is not None and config.url == "s3://other/p/q"
    assert config.source == "QWENBUILD_REMOTE_CACHE"
    (tmp_path / "qwenbuild.toml").unlink()
    monkeypatch.delenv("QWENBUILD_REMOTE_CACHE")
    assert remote_config(tmp_path) is None


# -- pull and shards ------------------------------------------------------------------------


def test_pull_restores_a_clone_byte_identical_paying_nothing(tmp_path: Path, team: Team,
                                                             fake: FakeAimlapi,
        run: Callable[..., Ran]) -> None:
    origin = shared_campaign(tmp_path / "origin", assets=3)
    assert run("build", origin, cache=tmp_path / "c0").code == 0
    assert posts(fake) == 6
    copy = clone(origin.parent, tmp_path / "clone")
    manifest = (copy.parent / "out" / "manifest.json").read_bytes()
    assert outputs(copy) == {}
    # A team cache that cannot be read is not said to lack the images.
    blind = run("pull", copy, "--json", cache=tmp_path / "c1",
                env={"AWS_SECRET_ACCESS_KEY": ""})
    assert blind.code == 1
    reasons = {m["reason"] for m in blind.json()["missing"]}
    assert reasons == {"not in the local cache, and the team cache could not be read (see "
                       "the warning above): run qwenbuild pull again once it can be"}
    assert "going on with the local cache only" in blind.err
    # No team cache at all: said so.
    alone = run("pull", copy, "--json", "--remote", "off", cache=tmp_path / "c1")
    assert {m["reason"] for m in alone.json()["missing"]} == {
        'not in the local cache, and no team cache is set up (see "Working as a team" in the '
        "README); qwenbuild build generates it (and pays for it)"}
    result = run("pull", copy, cache=tmp_path / "c1")
    assert result.code == 0, result.err
    assert "6 restored, 0 already up to date, 0 could not be restored" in result.out
    assert outputs(copy) == outputs(origin)
    assert (copy.parent / "out" / "manifest.json").read_bytes() == manifest
    assert posts(fake) == 0 + 6
    again = run("pull", copy, "--json", cache=tmp_path / "c1")
    assert again.code == 0 and len(again.json()["up_to_date"]) == 6

    # What neither cache holds, or what the campaign no longer makes as listed, is named.
    client = team.server.client()
    gone = sorted(n for n in team.objects() if n.endswith(".json") and "/objects/" in n)[0]
    obstore.delete(client, gone)
    third = clone(origin.parent, tmp_path / "third")
    third.write_text(third.read_text().replace("HEADLINE 2", "HEADLINE TWO"))
    result = run("pull", third, "--json", cache=tmp_path / "c2")
    assert result.code == 1
    missing = {m["output"]: m["reason"] for m in result.json()["missing"]}
    assert len(missing) == 3
    assert sum("not in the local cache nor the team cache" in r for r in missing.values()) == 1
    assert sum("inputs changed since the manifest" in r for r in missing.values()) == 2
    assert "ERROR: not restored: out/" in result.err
    assert posts(fake) == 6
    nothing = shared_campaign(tmp_path / "never-built", assets=1)
    result = run("pull", nothing, cache=tmp_path / "c3")
    assert result.code == 1 and "out/manifest.json lists no outputs" in result.err


def test_shards_split_the_jobs_stably_and_a_final_build_restores_them(
        tmp_path: Path, team: Team, fake: FakeAimlapi,
        run: Callable[..., Ran]) -> None:
    origin = shared_campaign(tmp_path / "origin", assets=6)
    everything = {j["key"] for j in
                  run("plan", origin, "--json", cache=tmp_path / "p").json()["jobs"]}
    parts = [{j["key"] for j in run("plan", origin, "--json", "--shard", f"{i}/3",
                                    cache=tmp_path / "p").json()["jobs"]} for i in (1, 2, 3)]
    assert set().union(*parts) == everything and sum(map(len, parts)) == len(everything)
    assert parts[0] == {j["key"] for j in run("plan", origin, "--json", "--shard", "1/3",
                                              cache=tmp_path / "p").json()["jobs"]}
    # Three CI runners, one shard each, each its own checkout and cache.
    runners = [clone(origin.parent, tmp_path / f"runner{i}") for i in (1, 2, 3)]
    for i, runner in zip((1, 2, 3), runners, strict=True):
        assert run("build", runner, "--shard", f"{i}/3", cache=tmp_path / f"rc{i}").code == 0
    assert posts(fake) == len(everything) == 12
    # The final unsharded build restores everything from the team cache.
    final = run("build", origin, "--json", cache=tmp_path / "final")
    assert final.code == 0 and final.json()["cached"] == 12
    assert posts(fake) == 12
    plan = run("plan", clone(origin.parent, tmp_path / "later"), cache=tmp_path / "l")
    assert "12 from cache" in plan.out
    bad = run("build", origin, "--shard", "4/3")
    assert bad.code == 2 and "--shard 4/3" in bad.err


def test_the_secret_scan_covers_the_team_cache_files(tmp_path: Path, team: Team,
                                                     fake: FakeAimlapi,
                                                     cache_dir: Path,
        run: Callable[..., Ran]) -> None:
    """After builds that hit the team cache's paths (write-through, restore, a refused
    write, refused credentials) with -v, no credential is in any file or output."""
    campaign = shared_campaign(tmp_path / "a", assets=1)
    run("-v", "build", campaign, cache=tmp_path / "c1")
    run("-v", "build", clone(campaign.parent, tmp_path / "b"), cache=tmp_path / "c2")
    run("-v", "build", campaign, "--regenerate", cache=tmp_path / "c3", env=team.env("ro"))
    run("-v", "plan", campaign, cache=tmp_path / "c4",
        env={"AWS_SECRET_ACCESS_KEY": WRONG_SECRET})
    assert_no_secret(tmp_path, cache_dir)
    for name in team.objects():
        data = bytes(obstore.get(team.server.client(), name).bytes())
        assert RW_SECRET.encode() not in data and SECRET.encode() not in data, name


@needs_ocr
def test_pull_restores_the_image_a_text_reroll_chose(tmp_path: Path, team: Team,
                                                     fake: FakeAimlapi,
                                                     run: Callable[..., Ran]) -> None:
    """The output of a job whose text was rerolled is the reroll's image: pull on a fresh
    machine brings that one back (the choice comes from the committed manifest)."""
    origin = build_file_tree(tmp_path / "origin", {"templates/poster.j2": SIMPLE_TEMPLATE,
                                                   "campaign.toml": VERIFY_CAMPAIGN})
    answer(fake, MISSPELLED, GOOD)
    built = run("build", origin / "campaign.toml", "--verify-text", cache=tmp_path / "c0")
    assert built.code == 0, built.err
    requests = posts(fake)
    manifest = json.loads((origin / "out" / "manifest.json").read_text())
    assert manifest["outputs"][VERIFY_OUTPUT]["text_check"]["chosen"] == 1
    copy = clone(origin, tmp_path / "clone")
    result = run("pull", copy, cache=tmp_path / "c1")
    assert result.code == 0, result.err
    assert outputs(copy) == outputs(origin / "campaign.toml")
    assert (copy.parent / "out" / "manifest.json").read_text() == \
        (origin / "out" / "manifest.json").read_text()
    assert posts(fake) == requests


@needs_ocr
@pytest.mark.parametrize("command", ["build", "pull"])
def test_a_fresh_clone_restores_the_image_a_text_repair_chose(
        tmp_path: Path, team: Team, fake: FakeAimlapi, run: Callable[..., Ran],
        command: str) -> None:
    """A repaired output is the repair's image: on another machine (its own cache, the
    team's bucket, the committed manifest) a plain build or a pull brings that one back,
    paying nothing, and the manifest stays byte-identical."""
    origin = build_file_tree(tmp_path / "origin", {"templates/poster.j2": SIMPLE_TEMPLATE,
                                                   "campaign.toml": VERIFY_CAMPAIGN})
    repair_tests.answer(fake, repair_tests.GENERATION, repair_tests.MISSPELLED)
    repair_tests.answer(fake, repair_tests.FIX, repair_tests.derived_poster(
        ["SUMMER MARKET", "Fresh fruit every Sunday"], repair_tests.MISSPELLED))
    built = run("build", origin / "campaign.toml", "--verify-text", "--repair",
                cache=tmp_path / "c0")
    assert built.code == 0, built.err
    manifest = json.loads((origin / "out" / "manifest.json").read_text())
    entry = manifest["outputs"][repair_tests.OUTPUT]
    assert entry["text_check"]["attempts"][entry["text_check"]["chosen"]]["kind"] == "repair"
    requests = posts(fake)
    copy = clone(origin, tmp_path / "clone")
    result = run(command, copy, cache=tmp_path / "c1")
    assert result.code == 0, result.err
    assert outputs(copy) == outputs(origin / "campaign.toml")
    assert (copy.parent / "out" / "manifest.json").read_text() == \
        (origin / "out" / "manifest.json").read_text()
    assert posts(fake) == requests


def test_cache_push_uploads_what_was_paid_for_before_the_team_cache(
        tmp_path: Path, team: Team, fake: FakeAimlapi, run: Callable[..., Ran]) -> None:
    origin = shared_campaign(tmp_path / "origin", assets=2)
    assert run("build", origin, "--remote", "off", cache=tmp_path / "c0").code == 0
    assert posts(fake) == 4

    def objects() -> list[str]:
        return [n for n in team.objects() if "/objects/" in n]

    assert objects() == []
    dry = run("cache", "push", origin.parent, "--dry-run", "--json", cache=tmp_path / "c0")
    assert dry.code == 0, dry.err
    assert len(dry.json()["pushed"]) == 4 and objects() == []
    pushed = run("cache", "push", origin.parent, cache=tmp_path / "c0")
    assert pushed.code == 0, pushed.err
    assert "pushed 4 images to the team cache" in pushed.out
    assert len(objects()) == 8  # each image and its record
    again = run("cache", "push", origin.parent, cache=tmp_path / "c0")
    assert "pushed 0 images" in again.out
    # Another machine with an empty cache restores everything and pays nothing.
    copy = clone(origin.parent, tmp_path / "clone")
    restored = run("build", copy, "--json", cache=tmp_path / "c1")
    assert restored.code == 0 and restored.json()["cached"] == 4
    assert posts(fake) == 4
    # An image damaged in the local cache is never uploaded.
    client = team.server.client()
    for name in objects():
        obstore.delete(client, name)
    image = next((tmp_path / "c0" / "objects").rglob("*.png"))
    image.write_bytes(image.read_bytes()[:-10] + b"0123456789")
    damaged = run("cache", "push", origin.parent, "--json", cache=tmp_path / "c0")
    assert damaged.code == 1
    assert len(damaged.json()["pushed"]) == 3
    assert "damaged" in damaged.json()["skipped"][0]
    assert image.stem + ".png" not in {n.rsplit("/", 1)[-1] for n in objects()}
    assert_no_secret(tmp_path)
