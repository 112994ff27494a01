"""Provenance in the output files, `inspect`, and bytes that git can trust."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from qwenbuild.provenance import embed, extract, sd_parameters

from .conftest import tree_snapshot

INFO = {"prompt": "A poster • 欢迎 <&>", "negative": "blurry", "seed": "7", "model": "m",
        "kind": "runware", "provider": "qwen", "key": "ab" * 32, "width": "64",
        "height": "48"}


def _manifest(camp: Path) -> dict:
    return json.loads((camp.parent / "out/manifest.json").read_text())


def test_png_outputs_carry_sd_parameters_and_fields(project: Path, run,
                                                    cache_dir: Path) -> None:
    assert run("build", project).code == 0
    out = project.parent / "out"
    entry = _manifest(project)["outputs"]["9x16/small/story.png"]
    data = (out / "9x16/small/story.png").read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]  # the manifest's sha: as written
    with Image.open(out / "9x16/small/story.png") as img:
        text = dict(img.text)
        pixels = img.tobytes()
    prompt = text["qwenbuild:prompt"]
    assert 'Headline reading exactly: "SECOND STORY"' in prompt
    assert text["parameters"].startswith(prompt + "\n")
    assert f"Seed: {entry['provider_seed']}, Size: {entry['width']}x{entry['height']}, " \
           "Model: comp, Provider: small (preview)" in text["parameters"]
    assert text["qwenbuild:key"] == entry["key"]
    assert (text["qwenbuild:kind"], text["qwenbuild:provider"]) == ("preview", "small")
    assert text["qwenbuild:seed"] == str(entry["seed"])
    # The cache keeps the provider's bytes untouched; the pixels are the same.
    cached = cache_dir / "objects" / entry["key"][:2] / f"{entry['key']}.png"
    assert extract(cached.read_bytes()) is None
    with Image.open(cached) as original:
        assert original.tobytes() == pixels


def test_restored_outputs_get_the_same_bytes(project: Path, run) -> None:
    assert run("build", project).code == 0
    target = project.parent / "out/1x1/small/hero-v2.png"
    original = target.read_bytes()
    target.unlink()
    assert run("build", project, "--json").json()["cached"] == 1
    assert target.read_bytes() == original


def test_inspect_prints_the_provenance(project: Path, run) -> None:
    assert run("build", project).code == 0
    image = project.parent / "out/9x16/small/story.png"
    result = run("inspect", image)
    assert result.code == 0
    assert result.out.splitlines()[0].startswith("prompt:")
    assert "provider:      small" in result.out and "kind:          preview" in result.out
    info = run("inspect", image, "--json").json()["provenance"]
    assert info["asset"] == "story" and info["aspect"] == "9:16"
    assert set(info) >= {"prompt", "negative", "seed", "model", "kind", "provider", "key",
                         "parameters"}


def test_inspect_without_provenance_says_so(tmp_path: Path, run) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    result = run("inspect", plain)
    assert result.code == 1 and "no provenance" in result.out
    assert run("inspect", plain, "--json").json() == {"file": str(plain), "provenance": None}
    (tmp_path / "notes.txt").write_text("hello")
    bad = run("inspect", tmp_path / "notes.txt")
    assert bad.code == 2 and "not a PNG, JPEG or WebP image" in bad.err
    missing = run("inspect", tmp_path / "nope.png")
    assert missing.code == 2 and "no such file" in missing.err


@pytest.mark.parametrize(("fmt", "options"), [
    ("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {"quality": 80}),
    ("WEBP", {"lossless": True}),
])
def test_embedding_keeps_every_pixel_and_is_deterministic(fmt: str, options: dict) -> None:
    img = Image.radial_gradient("L").resize((64, 48)).convert("RGBA" if fmt == "WEBP" else "RGB")
    if fmt == "WEBP":
        img.putalpha(Image.linear_gradient("L").resize((64, 48)))
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    data = buf.getvalue()
    info = {**INFO, "parameters": sd_parameters(INFO, {"steps": 30, "CFGScale": 4})}
    marked = embed(data, info)
    assert embed(marked, info) == marked  # replaced, never doubled; no timestamps
    assert embed(data, info) == marked
    assert extract(marked) == info
    assert info["parameters"] == ("A poster • 欢迎 <&>\nNegative prompt: blurry\nSteps: 30, "
                                  "CFG scale: 4, Seed: 7, Size: 64x48, Model: m, Provider: "
                                  f"qwen (runware), qwenbuild key: {'ab' * 32}")
    with Image.open(io.BytesIO(data)) as before, Image.open(io.BytesIO(marked)) as after:
        assert (after.mode, after.size) == (before.mode, before.size)
        assert after.tobytes() == before.tobytes()
        if fmt != "PNG":
            assert b"qwenbuild:prompt" in after.info["xmp"]  # where other tools look


def test_outputs_and_manifest_are_byte_identical_on_another_machine(
        project: Path, run, tmp_path: Path, cache_dir: Path, monkeypatch) -> None:
    """Build; copy the cache elsewhere; rebuild a copy of the project in another folder
    from that cache: manifest.json and every output (renditions included) are the same."""
    project.write_text(project.read_text() + '\n[[exports]]\nname = "card"\naspect = "1:1"\n'
                       'width = 60\nheight = 40\nformat = "jpg"\n')
    assert run("build", project).code == 0
    first = tree_snapshot(project.parent / "out")
    other_cache = tmp_path / "other-machine" / "cache"
    shutil.copytree(cache_dir, other_cache)
    clone = tmp_path / "other-machine" / "checkout" / "brand"
    shutil.copytree(project.parent, clone, ignore=shutil.ignore_patterns("out"))
    monkeypatch.setenv("QWENBUILD_CACHE_DIR", str(other_cache))
    report = run("build", clone / "campaign.toml", "--json").json()
    assert (report["generated"], report["cached"]) == (0, 5)
    second = tree_snapshot(clone / "out")
    # The review page records this machine's last build (generated here, cached there).
    for tree in (first, second):
        for rel in [r for r in tree if r == "index.html" or r.startswith("review/")]:
            tree.pop(rel)
    assert second == first
    for rel in first:
        assert str(tmp_path) not in first[rel].decode("latin-1"), rel  # no absolute paths


@pytest.mark.parametrize(("place", "name", "message"), [
    ("asset", "con", "'con' is a reserved file name on Windows"),
    ("asset", "Lpt1", "'Lpt1' is a reserved file name on Windows"),
    ("asset", "poster.", "invalid name 'poster.'"),
    ("asset", "poster ", "invalid name 'poster '"),
    ("provider", "aux", "invalid provider name 'aux'"),
    ("provider", "Small", "provider name 'Small' differs only in case from 'small'"),
])
def test_output_names_are_portable(project: Path, run, place: str, name: str,
                                   message: str) -> None:
    text = project.read_text()
    if place == "asset":
        text = text.replace('id = "story"', f'id = "{name}"')
    else:
        text = text.replace("[[assets]]", f'[providers.{name}]\nkind = "preview"\n\n[[assets]]',
                            1)
    project.write_text(text)
    result = run("build", project)
    assert result.code == 2 and message in result.err
    assert not (project.parent / "out").exists()
