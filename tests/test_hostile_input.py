"""Hostile and mistaken input that cannot live in tests/data/bad_campaigns (FIFOs, devices,
symbolic links, the environment, generated files), and the input-validation contracts:
exit 2 with a located message, quickly, no traceback, nothing written, no request sent.

A subprocess guard (`timeout=`) is only a guard against a hang; the assertions are on exit
codes and messages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qwenbuild.campaign import is_name, load_campaign
from qwenbuild.errors import CampaignError, InputError
from qwenbuild.plan import plan
from qwenbuild.prompts import MAX_ITEMS, MAX_TEXT, Prompts
from qwenbuild.safeio import UnsafeFileError, read_regular
from qwenbuild.urlcheck import base_url_problem

from .conftest import build_file_tree, tree_snapshot

OK_TEMPLATE = 'A poster for {{ brand.name }} reading "{{ copy.headline }}".\n'

CAMPAIGN = """\
[campaign]
name = "hostile"
{campaign_extra}
[brand]
name = "Acme"

[[assets]]
id = "poster"
template = "{template}"
aspects = ["1:1"]
{asset_extra}[assets.copy]
headline = "HELLO"
"""

#: A fake secret: it must never appear in any output or written file.
SECRET = "sk-hostile-0123456789abcdef"


def _campaign(root: Path, template: str = "ok.j2", campaign_extra: str = "",
              asset_extra: str = "", files: dict[str, str | bytes] | None = None) -> Path:
    build_file_tree(root, {
        ".git/HEAD": "ref: refs/heads/main\n",
        "templates/ok.j2": OK_TEMPLATE,
        "campaign.toml": CAMPAIGN.format(template=template, campaign_extra=campaign_extra,
                                         asset_extra=asset_extra),
        **(files or {}),
    })
    return root / "campaign.toml"


def _qwenbuild(*args: str | Path, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A subprocess, so that a hang is a failed test and not a stuck test run."""
    return subprocess.run(
        [sys.executable, "-m", "qwenbuild", *map(str, args)], capture_output=True, text=True,
        timeout=90, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def _refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# -- files that are not regular files ------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_the_campaign_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "campaign.toml"
    os.mkfifo(fifo)  # nobody ever writes to it: an open that blocks would hang
    for command in ("plan", "build"):
        _refused(_qwenbuild(command, fifo),
                 f"{fifo}: not read: it is a FIFO (named pipe); only regular files are read")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/proc/self/environ",
                                    "/dev/stdin"])
def test_devices_and_proc_files_as_the_campaign_file_are_refused(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    result = _qwenbuild("plan", device)
    _refused(result, f"{device}: not read: it is")
    assert SECRET not in result.stderr


def test_a_campaign_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "campaign.toml"
    with open(big, "wb") as file:
        file.truncate(9 * 1024 * 1024)  # sparse: 9 MiB of zeros, no disk used
    _refused(_qwenbuild("plan", big), "it is 9 MiB; the limit is 8 MiB")


def test_read_regular_reads_only_regular_files_within_the_limit(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"12345")
    assert read_regular(tmp_path / "a", 5) == b"12345"
    with pytest.raises(UnsafeFileError, match="it is 5 bytes; the limit is 4 bytes"):
        read_regular(tmp_path / "a", 4)
    with pytest.raises(UnsafeFileError, match="a folder"):
        read_regular(tmp_path, 100)
    (tmp_path / "link").symlink_to("/proc/self/environ")
    with pytest.raises(UnsafeFileError, match="under /proc"):
        read_regular(tmp_path / "link", 100)


# -- templates: inside the repository, regular files, never special ones --------------------


def test_template_folder_under_proc_is_a_located_error_even_when_external_is_allowed(
        tmp_path: Path) -> None:
    path = _campaign(tmp_path, campaign_extra='templates = ["/proc/self"]\n'
                                              "allow_external_templates = true\n")
    result = _qwenbuild("plan", path)
    _refused(result, f"{path}:3:14: campaign.templates[0]: '/proc/self' cannot be a template "
                     "folder: it is under /proc")
    assert "unknown template" not in result.stderr  # not repeated per asset


def test_template_folder_outside_the_repository_needs_the_opt_in(tmp_path: Path) -> None:
    build_file_tree(tmp_path / "shared", {"ok.j2": OK_TEMPLATE})
    path = _campaign(tmp_path / "repo", campaign_extra='templates = ["../shared"]\n')
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:3:14: campaign.templates[0]: template folder "
                              f"'../shared' ({tmp_path / 'shared'}) is outside the repository "
                              f"({tmp_path / 'repo'}); set campaign.allow_external_templates")
    path.write_text(path.read_text().replace(
        'templates = ["../shared"]', 'templates = ["../shared"]\nallow_external_templates = true'))
    assert plan(load_campaign(path)).jobs[0].request.prompt.startswith("A poster for Acme")


def test_template_symlinks_out_of_the_repository_are_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(f"API_KEY={SECRET}\n")
    repo = tmp_path / "repo"
    path = _campaign(repo, template="leak.j2")
    (repo / "templates" / "leak.j2").symlink_to(secret)
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    (problem,) = info.value.problems
    assert f"{path}:9:1: assets[0] (poster).template: template 'leak.j2' is not read: it " \
           f"resolves to {secret}, outside the repository ({repo})" in problem
    # Reached through an include, the file is refused when the prompt renders.
    (repo / "templates" / "main.j2").write_text("{% include 'leak.j2' %} {{ copy.headline }}")
    path.write_text(path.read_text().replace("leak.j2", "main.j2"))
    with pytest.raises(InputError) as info:
        plan(load_campaign(path))
    assert info.value.problems == [
        f"asset poster: template main.j2: leak.j2 is not read: it resolves to {secret}, "
        f"outside the repository ({repo}); set campaign.allow_external_templates = true to "
        "allow it"]
    for kind in ("import", "extends"):
        statement = ("{% import 'leak.j2' as x %}" if kind == "import"
                     else "{% extends 'leak.j2' %}")
        (repo / "templates" / "main.j2").write_text(statement + "{{ copy.headline }}")
        with pytest.raises(InputError, match="leak.j2 is not read: it resolves to"):
            plan(load_campaign(path))


@pytest.mark.parametrize("target", ["/proc/self/environ", "/dev/zero", "/etc/passwd"])
def test_a_template_linked_to_a_special_or_system_file_is_refused_by_the_cli(
        tmp_path: Path, target: str) -> None:
    if not os.path.exists(target):
        pytest.skip(f"no {target} here")
    path = _campaign(tmp_path, template="evil.j2")
    (tmp_path / "templates" / "evil.j2").symlink_to(target)
    before = tree_snapshot(tmp_path)
    result = _qwenbuild("build", path, env={"AIMLAPI_API_KEY": SECRET})
    _refused(result, f"{path}:9:1: assets[0] (poster).template: template 'evil.j2' is not "
                     "read: it")
    assert SECRET not in result.stdout + result.stderr
    assert tree_snapshot(tmp_path) == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_among_the_templates_never_blocks(tmp_path: Path) -> None:
    path = _campaign(tmp_path, template="pipe.j2")
    os.mkfifo(tmp_path / "templates" / "pipe.j2")
    _refused(_qwenbuild("plan", path), "template 'pipe.j2' is not read: it is a FIFO")
    # A FIFO next to a good template is neither read (fingerprints) nor a problem.
    path.write_text(path.read_text().replace("pipe.j2", "ok.j2"))
    result = _qwenbuild("plan", path)
    assert result.returncode == 0, result.stderr
    assert tmp_path / "templates" / "pipe.j2" not in Prompts([tmp_path / "templates"]).files()


def test_a_template_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = _campaign(tmp_path, template="big.j2",
                     files={"templates/big.j2": "x" * (128 * 1024 + 1)})
    with pytest.raises(CampaignError, match=r"template 'big.j2' is not read: it is 128.0 KiB|"
                                            r"template 'big.j2' is not read: it is 128 KiB"):
        load_campaign(path)


def test_outside_git_the_repository_is_the_folder_init_made(tmp_path: Path, run) -> None:
    """`qwenbuild init` then `build` before `git init` works: the .gitignore that init
    writes marks the repository's root. Without it, the campaign's folder is the limit."""
    repo = tmp_path / "brand"
    assert run("init", repo).code == 0
    assert run("plan", repo / "projects/example/campaign.toml").code == 0
    (repo / ".gitignore").unlink()
    result = run("plan", repo / "projects/example/campaign.toml")
    assert result.code == 2
    assert "is outside the repository" in result.err


# -- the template sandbox: bounded in time and size -----------------------------------------


def _render(tmp_path: Path, source: str) -> str:
    (tmp_path / "t.j2").write_text(source)
    return Prompts([tmp_path], tmp_path).render("t.j2", {"copy": {"headline": "HI"}},
                                                "asset a")


@pytest.mark.parametrize(("source", "message"), [
    ("{{ 9 ** 9999999 }}", "9 ** 9999999 would have about 31,699,247 bits"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
     f"range() of more than {MAX_ITEMS:,} items"),
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
     "more than 100,000 loop iterations"),
    ("{% for c in 'x' * 99999 %}{% for d in 'yy' %}{% endfor %}{% endfor %}",
     "more than 100,000 loop iterations"),
    ("{{ 'x' * 10**9 }}", "a repetition would be 1,000,000,000 characters"),
    ("{{ ([1] * 10**6) | length }}", "a repetition would be 1,000,000 items"),
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}", f"a concatenation would be 131,080 characters; the limit is {MAX_TEXT:,}"),
    ("{% set ns = namespace(n=3) %}{% for i in range(99) %}{% set ns.n = ns.n * ns.n %}"
     "{% endfor %}", "a product of about"),
    ("{{ 'x' | center(10**9) }}", "the center filter's argument 1,000,000,000"),
    ("{{ 'x'.ljust(10**9) }}", "str.ljust() argument 1,000,000,000"),
    ("{{ '%0999999999d' % 1 }}", "a formatted field would be 999,999,999 characters"),
    ("{{ '%0999999999d' | format(1) }}", "a formatted field would be 999,999,999 characters"),
    ("{{ '{:>{w}}'.format(1, w=10**9) }}", "a formatted field"),
    ("{{ ('x' * 50000) | replace('x', 'y' * 50000) }}", "a replacement would be"),
    ("{{ ('x' * 50000).replace('', 'yyy') }}", "a replacement would be"),
    ("{{ ['x' * 60000, 'y' * 60000] | join }}", "the text of a value would be"),
    ("{{ ''.join(['x' * 60000, 'y' * 60000]) }}", "the text of a value would be"),
    ("{{ ('<' * 50000) | striptags }}", "the input of the striptags filter"),
    ("{{ lipsum(10**6) }}", "lipsum() takes counts from 0 to 1000"),
    ("{% for i in range(10000) %}{{ copy.headline * 6 }}{% endfor %}", "the output would be"),
    ("{% macro f(n) %}{% if n < 40 %}{{ f(n+1) }}{{ f(n+1) }}{% endif %}{% endmacro %}"
     "{{ f(0) }}", "took longer than 5 s to render"),
    # Many references to one long text: small in memory until it becomes text.
    ("{% set s = 'x' * 90000 %}{{ [s, s] }}", "the text of a value would be"),
    ("{% set s = 'x' * 90000 %}{{ [s] * 10000 }}", "the text of a repeated list"),
    ("{% set s = 'x' * 90000 %}{{ '%s' % ([s, s],) }}", "the text of a value would be"),
    ("{% set s = 'x' * 90000 %}{{ '{}'.format([s, s]) }}", "the text of a value would be"),
    ("{% set s = 'x' * 90000 %}{{ [s, s] ~ '' }}", "the text of a value would be"),
    ("{% set s = 'x' * 90000 %}{{ [s, s] | tojson }}", "the text of a value would be"),
    ("{% set s = 'x' * 90000 %}{{ namespace(a=[s, s]) }}", "the text of a value would be"),
    ("{{ ('x'.encode() * 10**9) | length }}", "a repetition would be 1,000,000,000"),
    ("{{ '{0:{1}}'.format(1, '999999999') }}", "a formatted field"),
    # Each value under the limits, too many of them in all.
    ("{% set s = 'x' * 90000 %}{% for i in range(200) %}{% set y = s | upper %}{% endfor %}",
     "built more than 10,000,000 characters and items in all"),
])
def test_templates_are_bounded(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        _render(tmp_path, source)
    (problem,) = info.value.problems
    assert problem.startswith("asset a: template t.j2: over a template limit"), problem
    assert message in problem, problem


@pytest.mark.parametrize("source", [
    "{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}",
    "{% include 't.j2' %}",
    "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
])
def test_recursion_in_templates_is_an_input_error(tmp_path: Path, source: str) -> None:
    with pytest.raises(InputError, match="nested too deeply, or recursive without end"):
        _render(tmp_path, source)


def test_ordinary_templates_render_as_before(tmp_path: Path) -> None:
    source = ("{% set ns = namespace(s='') %}{% for w in ['a', 'b'] %}{% set ns.s = ns.s ~ w %}"
              "{% endfor %}{{ ns.s }} {{ 2 ** 10 }} {{ 'ab' * 2 }} {{ '%05d' % 42 }} "
              "{{ '{:>4}'.format(7) }} {{ range(3) | join(',') }} {{ copy.headline | center(6) }}"
              " {{ [1, 2] + [3] }} {{ copy.label | default('none') }} {{ copy.items() | list }}"
              " {{ (range(10000) | list | tojson)[-5:] }}")
    assert _render(tmp_path, source) == (
        "ab 1024 abab 00042 7 0,1,2 HI [1, 2, 3] none [('headline', 'HI')] 9999]")


def test_a_hanging_template_is_stopped_in_a_real_build(tmp_path: Path) -> None:
    path = _campaign(tmp_path, template="slow.j2", files={
        "templates/slow.j2": "{% for i in range(100000) %}{% for j in range(100000) %}x"
                             "{% endfor %}{% endfor %}{{ 9 ** 9999999 }}"})
    before = tree_snapshot(tmp_path)
    _refused(_qwenbuild("build", path), "ERROR: asset poster: template slow.j2: over a "
                                        "template limit (line 1)")
    assert tree_snapshot(tmp_path) == before


# -- base URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "problem"), [
    ("https://api.example/v1", None),
    ("http://127.0.0.1:8080", None),
    ("https://user:hunter2@api.example", "contains credentials"),
    ("https://token@api.example", "contains credentials"),
    ("ftp://api.example", "must start with https://"),
    ("api.example", "must start with https://"),
    ("https://", "has no host name"),
    ("https://api.example:99999", "has an invalid port"),
    ("https://api.example/?key=hunter2", "has a query"),
    ("https://api.example/#x", "has a fragment"),
    (" https://api.example", "has spaces around it"),
    ("https://api.example/a b", "contains spaces, control characters"),
    ("https://api.exa\nmple", "contains spaces, control characters"),
    ("", "is empty"),
])
def test_base_url_rules(url: str, problem: str | None) -> None:
    found = base_url_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
        assert "hunter2" not in found


def test_credentials_in_a_base_url_from_the_environment_are_refused_at_load(
        tmp_path: Path) -> None:
    path = _campaign(tmp_path, asset_extra='providers = ["ai"]\n',
                     campaign_extra='\n[providers.ai]\nkind = "aimlapi"\n')
    env = {"AIMLAPI_API_KEY": SECRET, "AIMLAPI_BASE_URL": "https://me:hunter2-pass@gw.example"}
    result = _qwenbuild("build", path, env=env)
    _refused(result, f"{path}:4:1: providers.ai: the environment variable AIMLAPI_BASE_URL "
                     "(the base URL of this provider) is invalid: 'https://[redacted]@gw.example' "
                     "contains credentials")
    verbose = _qwenbuild("plan", path, "-v", env=env)
    assert verbose.returncode == 2
    for output in (result, verbose):
        assert "hunter2" not in output.stdout + output.stderr
        assert SECRET not in output.stdout + output.stderr


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["draft\n", "a\n", "draft\r\n", "x" * 101, "-x", "a b", "ä",
                                  "a/b", "..", "", "٣"])
def test_names_are_whole_text_matches(name: str) -> None:
    assert not is_name(name)


def test_a_provider_name_with_a_newline_creates_no_folder(tmp_path: Path, run) -> None:
    path = _campaign(tmp_path, asset_extra='providers = ["draft\\n"]\n',
                     campaign_extra='\n[providers."draft\\n"]\nkind = "preview"\n')
    result = run("build", path)
    assert result.code == 2
    assert f'{path}:4:1: providers."draft\\n": invalid provider name "draft\\n"' in result.err
    assert not (tmp_path / "out").exists()


# -- messages with their line ---------------------------------------------------------------


def test_every_loader_message_has_its_line_and_column(tmp_path: Path) -> None:
    body = """\
[campaign]
name = "t"

[defaults]
template = "ok.j2"
aspects = ["1:1"]
providers = ["drafts"]

[providers.draft]
kind = "preview"
scale = 7

[[assets]]
id = "a"

[[assets]]
id = "b"
aspects = ["1:1", "5:7"]
seeds = [1, "2"]
[assets.copy]
headline = "x"
expect_text = ["x"]

[[assets]]
id = "c"
"""
    build_file_tree(tmp_path, {".git/x": "", "templates/ok.j2": OK_TEMPLATE,
                               "campaign.toml": body})
    path = tmp_path / "campaign.toml"
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    problems = info.value.problems
    assert all(re.match(rf"{re.escape(str(path))}:\d+:\d+: ", p) for p in problems), problems
    text = "\n".join(problems)
    assert f"{path}:11:1: providers.draft.scale: 7 is above the maximum" in text
    assert f"{path}:19:13: assets[1] (b).seeds[1]: expected an integer" in text
    assert f"{path}:18:19: assets[1] (b).aspects[1]: unsupported aspect ratio '5:7'" in text
    assert f"{path}:22:1: assets[1] (b).copy.expect_text: 'expect_text' is a field of the " \
           "asset, but here it is a key of the copy" in text
    # An error in [defaults] is reported once, at [defaults], not once per asset.
    (defaults,) = [p for p in problems if "drafts" in p]
    assert defaults.startswith(f"{path}:7:14: defaults.providers[0]: unknown provider "
                               "'drafts' (did you mean 'draft'?)")


def test_unlocated_problems_keep_the_plain_form(tmp_path: Path) -> None:
    path = tmp_path / "campaign.toml"
    path.write_text('[[assets]]\nid = "a"\n')
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    assert info.value.problems == [
        f"{path}: campaign: missing required table [campaign] (with at least name)"]


def test_the_hostile_catalogue_leaves_nothing_behind(tmp_path: Path) -> None:
    """Every case of the catalogue again, in one subprocess under a time guard (a hang
    there is a failed test, not a stuck test run), with `-W error`: warnings such as
    Pillow's decompression bomb warning must not escape either."""
    catalogue = Path(__file__).parent / "data" / "bad_campaigns"
    work = tmp_path / "repo"
    shutil.copytree(catalogue, work)
    driver = """
import contextlib, io, json, sys
from pathlib import Path
from qwenbuild.cli import main
for case in sorted(Path(sys.argv[1]).glob("*.toml")):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["plan", str(case)])
    print(json.dumps([case.name, code, err.getvalue()]), flush=True)
"""
    result = subprocess.run([sys.executable, "-W", "error", "-c", driver, str(work)],
                            capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(outcomes) == len(list(catalogue.glob("*.toml")))
    for name, code, err in outcomes:
        assert code == 2, (name, err)
        assert "Traceback" not in err and "internal error" not in err, (name, err)


def test_a_byte_order_mark_is_not_an_error(tmp_path: Path) -> None:
    path = _campaign(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_campaign(path).assets[0].id == "poster"


def test_a_file_broken_throughout_lists_the_first_problems_quickly(tmp_path: Path) -> None:
    assets = "".join(f'[[assets]]\nid = "a{i}"\ntemplate = "ok.j2"\naspects = ["7:7"]\n'
                     for i in range(5000))
    build_file_tree(tmp_path, {".git/x": "", "templates/ok.j2": OK_TEMPLATE,
                               "campaign.toml": '[campaign]\nname = "t"\n' + assets})
    path = tmp_path / "campaign.toml"
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    problems = info.value.problems
    assert len(problems) == 201
    assert problems[0].startswith(f"{path}:6:12: assets[0] (a0).aspects[0]: unsupported")
    assert problems[-1] == f"{path}: and 4800 more problems, not listed; fix these first"


def test_the_cache_key_pattern_matches_the_whole_text() -> None:
    from qwenbuild.maintenance import _KEY

    assert _KEY.fullmatch("a" * 64)
    assert not _KEY.fullmatch("a" * 64 + "\n")
