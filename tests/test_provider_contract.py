"""The provider contract: what every HTTP provider must do, checked against each one's fake.

Each row of `CASES` is a provider kind and model (and a delivery mode where the provider
has several). The tests drive real builds through the CLI against the strict fakes on
127.0.0.1 (tests/fakes), using only the knobs every fake shares (`reply_when`,
`corrupt_when`, `report_cost`, `error_reply`, `empty_answer`), so a new provider gets the
whole suite by adding its fake and one row here. What is particular to one provider's wire
format stays in its own test file (test_provider_<kind>.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from qwenbuild.providers import provider_class
from qwenbuild.providers.base import ProviderSpec
from qwenbuild.sizes import ASPECTS

from .conftest import Result, build_file_tree
from .fakes import FAKES, FakeProviders, aimlapi, empiriolabs, runware
from .fakes.server import Reply, png_bytes

Run = Callable[..., Result]

TEMPLATE = ('A {{ asset.orientation }} poster for {{ brand.name }} (asset-id={{ asset.id }};). '
            'Headline reading exactly: "{{ copy.headline }}".\n')


@dataclass(frozen=True)
class Case:
    """One provider (kind, model, delivery) under contract."""

    id: str
    kind: str
    model: str
    #: What the fake reports an image of this model costs.
    price: float
    #: Extra lines of the provider table (a delivery mode).
    options: str = ""
    #: Provider-specific refusals: (asset lines, files, part of the message).
    refusals: tuple[tuple[str, dict[str, bytes], str], ...] = field(default=())

    @property
    def key_env(self) -> str:
        return f"{FAKES[self.kind].env}_API_KEY"


def _refs(n: int) -> tuple[str, dict[str, bytes]]:
    files = {f"refs/{i}.png": png_bytes(16, 16, (i * 50, 0, 0)) for i in range(n)}
    return f"references = {json.dumps(sorted(files))}", files


ONE_REF_LINE, ONE_REF = _refs(1)
LONG_NEGATIVE = 'negative = "' + "x" * 501 + '"'

CASES = [
    Case("runware-2.0", "runware", runware.QWEN_2, runware.PRICES[runware.QWEN_2],
         refusals=(('negative = "x"', {}, "negative prompt is 1 characters"),
                   (LONG_NEGATIVE, {}, "takes 2 to 500"))),
    Case("runware-2.0-pro", "runware", runware.QWEN_2_PRO, runware.PRICES[runware.QWEN_2_PRO],
         refusals=((f'{ONE_REF_LINE}\nnegative = "blurry"', ONE_REF,
                    "cannot combine reference images with a negative prompt"),)),
    Case("runware-108", "runware", runware.QWEN_20B, runware.PRICES[runware.QWEN_20B],
         refusals=((ONE_REF_LINE, ONE_REF, "takes no reference images"),)),
    Case("runware-2.0-async", "runware", runware.QWEN_2, runware.PRICES[runware.QWEN_2],
         options='delivery = "async"'),
    Case("aimlapi-2.0", "aimlapi", "alibaba/qwen-image-2-0",
         aimlapi.PRICES["alibaba/qwen-image-2-0"],
         refusals=((LONG_NEGATIVE, {}, "takes 1 to 500"),)),
    Case("aimlapi-2.0-pro", "aimlapi", "alibaba/qwen-image-2-0-pro",
         aimlapi.PRICES["alibaba/qwen-image-2-0-pro"]),
    Case("empiriolabs-jobs", "empiriolabs", "qwen-image-2-0", empiriolabs.PRICES["standard"],
         refusals=((LONG_NEGATIVE, {}, "takes 1 to 500"),)),
    Case("empiriolabs-sync", "empiriolabs", "qwen-image-2-0", empiriolabs.PRICES["standard"],
         options="sync = true"),
]
#: One row per provider kind: for what does not depend on the model or delivery.
KINDS = [c for c in CASES if c.id in ("runware-2.0", "aimlapi-2.0", "empiriolabs-jobs")]
#: One row per model: for sizes and refusals.
MODELS = [c for c in CASES if not c.options]


def by_id(cases: list[Case]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[c.id for c in cases])


def marker(asset: str) -> str:
    """The text of an asset's prompt that names it (see TEMPLATE)."""
    return f"asset-id={asset};"


def write_campaign(root: Path, case: Case, assets: str, provider_extra: str = "",
                   files: dict[str, bytes] | None = None) -> Path:
    text = (
        '[campaign]\nname = "contract"\n\n[brand]\nname = "Acme"\n\n'
        '[copy]\nheadline = "HELLO CONTRACT"\n\n'
        '[defaults]\ntemplate = "poster.j2"\naspects = ["1:1"]\nseeds = [7]\n'
        'providers = ["p"]\n\n'
        f'[providers.p]\nkind = "{case.kind}"\nmodel = "{case.model}"\n{case.options}\n'
        f"{provider_extra}\n\n{assets}"
    )
    build_file_tree(root, {"templates/poster.j2": TEMPLATE, "campaign.toml": text,
                           **(files or {})})
    return root / "campaign.toml"


def assets(*ids: str, extra: str = "") -> str:
    return "".join(f'[[assets]]\nid = "{i}"\n{extra}\n\n' for i in ids)


def jobs_of(result: Result) -> dict[str, dict[str, Any]]:
    return {f"{j['asset']}/{j['provider']}": j for j in result.json()["jobs"]}


def failure_lines(result: Result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("failed")]


def written_files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


# -- auth -------------------------------------------------------------------------------------


@by_id(KINDS)
def test_a_missing_key_names_the_variable_and_fails_only_that_providers_jobs(
        case: Case, fake_providers: FakeProviders, run: Run, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_providers[case.kind]
    monkeypatch.delenv(case.key_env)
    path = write_campaign(tmp_path, case, assets("hero", extra='providers = ["p", "preview"]'))
    result = run("build", path, "--json")
    assert result.code == 1
    jobs = jobs_of(result)
    assert jobs["hero/preview"]["status"] == "generated"
    assert (tmp_path / jobs["hero/preview"]["output"]).is_file()
    assert jobs["hero/p"]["status"] == "failed"
    assert f"{case.key_env} is not set" in jobs["hero/p"]["error"]
    assert fake.requests == []


@by_id(KINDS)
def test_a_wrong_key_is_refused_once_and_no_key_is_ever_shown(
        case: Case, fake_providers: FakeProviders, run: Run, tmp_path: Path,
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="qwenbuild")
    fake = fake_providers[case.kind]
    secret = FAKES[case.kind].key
    path = write_campaign(tmp_path, case, assets("hero"))

    wrong = "wrong-key-ffff0000"
    monkeypatch.setenv(case.key_env, wrong)
    refused = run("build", path, "--json")
    assert refused.code == 1
    (line,) = failure_lines(refused)
    assert "HTTP 401" in line and f"check {case.key_env}" in line
    assert fake.generations_for(marker("hero")) == 1  # a 401 is not retried

    # A server that echoes the key: redacted before anyone sees it.
    monkeypatch.setenv(case.key_env, secret)
    fake.reply_when(marker("hero"), fake.error_reply(401, f"key {secret} was revoked"))
    echoed = run("build", path, "--json", "-v")
    assert echoed.code == 1
    (line,) = failure_lines(echoed)
    assert "[redacted]" in line
    for text in (refused.out, refused.err, echoed.out, echoed.err, caplog.text):
        assert secret not in text and wrong not in text
    for file in written_files(tmp_path, cache_dir):
        data = file.read_bytes()
        assert secret.encode() not in data and wrong.encode() not in data, file
    # The key travels in a header only, never in a body.
    assert not [r for r in fake.requests if secret.encode() in r.body]


# -- retries ----------------------------------------------------------------------------------

TRANSIENT: dict[str, Callable[[Any], Reply]] = {
    "503": lambda fake: fake.error_reply(503, "Service busy, try again"),
    "html-502": lambda fake: Reply(502, b"<html><head><title>502 Bad Gateway</title></head>"
                                        b"<body>nginx</body></html>",
                                   {"Content-Type": "text/html"}),
    "reset": lambda fake: Reply(drop=True),
}


@by_id(KINDS)
@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_a_transient_fault_is_retried_then_built(case: Case, fault: str,
                                                 fake_providers: FakeProviders, run: Run,
                                                 tmp_path: Path) -> None:
    fake = fake_providers[case.kind]
    fake.reply_when(marker("flaky"), TRANSIENT[fault](fake))
    path = write_campaign(tmp_path, case, assets("flaky"))
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    (job,) = result.json()["jobs"]
    assert job["status"] == "generated"
    assert fake.generations_for(marker("flaky")) == 2


@by_id(KINDS)
def test_when_retries_run_out_only_that_job_fails_and_a_rerun_retries_only_it(
        case: Case, fake_providers: FakeProviders, run: Run, tmp_path: Path) -> None:
    fake = fake_providers[case.kind]
    fake.reply_when(marker("flaky"), fake.error_reply(500, "The upstream model failed"),
                    times=None)
    path = write_campaign(tmp_path, case, assets("steady", "flaky"), "max_retries = 1")
    result = run("build", path, "--json")
    assert result.code == 1
    jobs = jobs_of(result)
    assert jobs["steady/p"]["status"] == "generated"
    failed = jobs["flaky/p"]
    assert failed["status"] == "failed"
    assert "HTTP 500" in failed["error"] and "The upstream model failed" in failed["error"]
    assert "after 1 retries" in failed["error"]
    assert fake.generations_for(marker("flaky")) == 2  # the first try and one retry
    assert not (tmp_path / failed["output"]).exists()

    fake.scripted.clear()
    again = run("build", path, "--json")
    assert again.code == 0, again.err
    statuses = {k: j["status"] for k, j in jobs_of(again).items()}
    assert statuses == {"steady/p": "up_to_date", "flaky/p": "generated"}
    assert fake.generations_for(marker("steady")) == 1
    assert fake.generations_for(marker("flaky")) == 3


@by_id(KINDS)
def test_retry_after_is_honoured(case: Case, fake_providers: FakeProviders, run: Run,
                                 tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="qwenbuild")
    fake = fake_providers[case.kind]
    # Asks for 200 s: capped at two minutes, times the tests' QWENBUILD_RETRY_SCALE 0.01.
    fake.reply_when(marker("hero"), fake.error_reply(429, "Slow down",
                                                     {"Retry-After": "200"}))
    path = write_campaign(tmp_path, case, assets("hero"))
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    assert fake.generations_for(marker("hero")) == 2
    (retry,) = [r.getMessage() for r in caplog.records if "retry 1/" in r.getMessage()]
    assert "HTTP 429" in retry and retry.endswith("in 1.2s"), retry


# -- faults after the provider answered --------------------------------------------------------


@by_id(CASES)
def test_corrupt_image_bytes_leave_nothing_in_the_store(case: Case,
                                                        fake_providers: FakeProviders,
                                                        run: Run, tmp_path: Path,
                                                        cache_dir: Path) -> None:
    fake = fake_providers[case.kind]
    fake.corrupt_when = marker("broken")
    path = write_campaign(tmp_path, case, assets("fine", "broken"))
    result = run("build", path, "--json")
    assert result.code == 1
    jobs = jobs_of(result)
    assert jobs["fine/p"]["status"] == "generated"
    broken = jobs["broken/p"]
    assert broken["status"] == "failed" and "not a valid image" in broken["error"]
    assert not (tmp_path / broken["output"]).exists()
    stored = [p.name for p in (cache_dir / "objects").rglob("*") if p.is_file()]
    assert not [n for n in stored if n.startswith(broken["key"])]
    assert sorted(stored) == sorted(f"{jobs['fine/p']['key']}.{e}" for e in ("json", "png"))
    assert fake.generations_for(marker("broken")) == 1  # paid already: not generated again


@by_id(CASES)
def test_a_request_that_takes_too_long_times_out(case: Case, fake_providers: FakeProviders,
                                                 run: Run, tmp_path: Path) -> None:
    fake = fake_providers[case.kind]
    fake.reply_when(marker("hero"), Reply(503, {}, delay=2.5))
    path = write_campaign(tmp_path, case, assets("hero"), "timeout = 1")
    result = run("build", path, "--json")
    assert result.code == 1
    (job,) = result.json()["jobs"]
    assert job["status"] == "failed" and "timed out after 1s" in job["error"]
    assert fake.generations_for(marker("hero")) == 1
    assert not (tmp_path / job["output"]).exists()


ODD: dict[str, Callable[[Any], Reply]] = {
    "no image": lambda fake: fake.empty_answer(),
    "not JSON": lambda fake: Reply(200, b"<html><body>OK</body></html>",
                                   {"Content-Type": "text/html"}),
    "truncated JSON": lambda fake: Reply(200, b'{"data": [',
                                         {"Content-Type": "application/json"}),
}


@by_id(CASES)
@pytest.mark.parametrize("answer", sorted(ODD))
def test_an_odd_2xx_answer_fails_clearly_and_is_not_generated_again(
        case: Case, answer: str, fake_providers: FakeProviders, run: Run,
        tmp_path: Path) -> None:
    fake = fake_providers[case.kind]
    fake.reply_when(marker("odd"), ODD[answer](fake))
    path = write_campaign(tmp_path, case, assets("fine", "odd"))
    result = run("build", path, "--json")
    assert result.code == 1
    jobs = jobs_of(result)
    assert jobs["fine/p"]["status"] == "generated"
    odd = jobs["odd/p"]
    assert odd["status"] == "failed"
    assert "\n" not in odd["error"]
    if answer == "no image":
        assert "{" not in odd["error"]  # the answer is read, not dumped
    else:
        assert "unreadable answer" in odd["error"]
    (line,) = failure_lines(result)
    assert " odd 1:1 " in line
    # A 2xx: the provider accepted (and may have charged for) the work. Never asked again.
    assert fake.generations_for(marker("odd")) == 1
    assert not (tmp_path / odd["output"]).exists()


# -- sizes ------------------------------------------------------------------------------------


@by_id(MODELS)
def test_every_aspect_gives_a_body_the_fake_accepts(case: Case, fake_providers: FakeProviders,
                                                    run: Run, tmp_path: Path) -> None:
    fake = fake_providers[case.kind]
    provider = provider_class(case.kind)(ProviderSpec("p", case.kind, case.model, 1, {}))
    aspects = [a for a in ASPECTS if provider.supports_aspect(a)]
    assert len(aspects) == len(ASPECTS)
    path = write_campaign(tmp_path, case, assets("hero", extra=f"aspects = {json.dumps(aspects)}"))
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    assert result.json()["generated"] == len(aspects)
    assert fake.generations_for() == len(aspects)  # each accepted the first time
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["outputs"]
    for job in result.json()["jobs"]:
        entry = manifest[job["output"].removeprefix("out/")]
        with Image.open(tmp_path / job["output"]) as img:
            assert img.size == (entry["width"], entry["height"])
        if case.kind != "empiriolabs":  # there the service sizes named aspects itself
            assert img.size == provider.size_for(job["aspect"])


# -- refusals before spending ----------------------------------------------------------------

def _refusals() -> list[Any]:
    rows = []
    for case in MODELS:
        longest = provider_class(case.kind).models[case.model].max_prompt
        common = {
            "four references": (_refs(4)[0], _refs(4)[1], "reference images"),
            # The headline alone is as long as the model allows: the prompt is longer.
            "prompt too long": ('[assets.copy]\nheadline = "' + "L" * longest + '"', {},
                                f"to {longest}"),
        }
        for name, rule in common.items():
            rows.append(pytest.param(case, *rule, id=f"{case.id}-{name}"))
        for i, rule in enumerate(case.refusals):
            rows.append(pytest.param(case, *rule, id=f"{case.id}-rule{i}"))
    return rows


@pytest.mark.parametrize(("case", "lines", "files", "message"), _refusals())
def test_what_the_provider_refuses_is_refused_before_any_request(
        case: Case, lines: str, files: dict[str, bytes], message: str,
        fake_providers: FakeProviders, run: Run, tmp_path: Path) -> None:
    fake = fake_providers[case.kind]
    path = write_campaign(tmp_path, case, f'[[assets]]\nid = "hero"\n{lines}\n', files=files)
    result = run("build", path, "--json")
    assert result.code == 2, result.err
    assert "asset hero, provider p" in result.err and message in result.err
    assert fake.requests == []
    assert not (tmp_path / "out").exists()


# -- cost -------------------------------------------------------------------------------------


@by_id(CASES)
@pytest.mark.parametrize("reported", [True, False], ids=["reported", "unknown"])
def test_the_reported_cost_is_recorded_and_an_unknown_one_stays_null(
        case: Case, reported: bool, fake_providers: FakeProviders, run: Run,
        tmp_path: Path, cache_dir: Path) -> None:
    fake = fake_providers[case.kind]
    fake.report_cost = reported
    path = write_campaign(tmp_path, case, assets("hero"))
    result = run("build", path, "--json")
    assert result.code == 0, result.err
    expected = case.price if reported else None
    (entry,) = json.loads((tmp_path / "out" / "manifest.json").read_text())["outputs"].values()
    assert entry["cost_usd"] == expected
    (record,) = [json.loads(p.read_text()) for p in (cache_dir / "objects").rglob("*.json")]
    assert record["cost_usd"] == expected
    assert result.json()["cost_usd"] == pytest.approx(expected or 0.0)
