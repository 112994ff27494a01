"""Export renditions: exact sizes cut at a focal point, rebuilt only when they must be."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from qwenbuild.exports import Export, cover_box, render
from qwenbuild.provenance import extract

from .conftest import SIMPLE_CAMPAIGN

EXPORTS = """
[[exports]]
name = "insta"
aspect = "9:16"
width = 90
height = 120
format = "jpg"
quality = 80
focus = [0.5, 0.25]

[[exports]]
name = "og"
aspect = "1:1"
width = 120
height = 63
format = "webp"

[[exports]]
name = "thumb"
aspect = "1:1"
width = 32
height = 32
"""


@pytest.fixture
def exporting(project: Path) -> Path:
    project.write_text(SIMPLE_CAMPAIGN + EXPORTS)
    return project


def _manifest(camp: Path) -> dict:
    return json.loads((camp.parent / "out/manifest.json").read_text())


def test_build_writes_each_rendition_at_its_exact_size(exporting: Path, run) -> None:
    result = run("build", exporting, "--json")
    assert result.code == 0, result.err
    report = result.json()
    out = exporting.parent / "out"
    assert sorted(report["exports"]) == [
        "exports/insta/small/hero-v1.jpg", "exports/insta/small/hero-v2.jpg",
        "exports/insta/small/story.jpg",
        "exports/og/small/hero-v1.webp", "exports/og/small/hero-v2.webp",
        "exports/thumb/small/hero-v1.png", "exports/thumb/small/hero-v2.png",
    ]
    sizes = {"insta": ((90, 120), "JPEG"), "og": ((120, 63), "WEBP"), "thumb": ((32, 32), "PNG")}
    manifest = _manifest(exporting)
    for rel in report["exports"]:
        name = rel.split("/")[1]
        with Image.open(out / rel) as img:
            assert (img.size, img.format) == sizes[name]
        entry = manifest["exports"][rel]
        source = manifest["outputs"][entry["source"]]
        assert entry["source_sha256"] == source["sha256"]
        assert entry["settings"]["width"] == sizes[name][0][0]
        # Provenance travels with the rendition: the source's prompt, seed and key.
        info = extract((out / rel).read_bytes())
        assert info is not None and info["key"] == source["key"]
        assert (info["export"], info["source"]) == (name, entry["source"])
    assert set(manifest["outputs"]) == {j["output"][len("out/"):] for j in report["jobs"]}
    text = run("plan", exporting)
    assert "ok  out/exports/og/small/hero-v1.webp  (up to date)" in text.out


def test_renditions_are_made_again_only_when_source_or_settings_change(exporting: Path,
                                                                       run) -> None:
    assert run("build", exporting).code == 0
    out = exporting.parent / "out"
    manifest = (out / "manifest.json").read_bytes()
    again = run("build", exporting, "--json").json()
    assert again["exports"] == []
    assert (out / "manifest.json").read_bytes() == manifest

    # Settings: only that export's renditions.
    exporting.write_text(exporting.read_text().replace("quality = 80", "quality = 60"))
    plan = run("plan", exporting, "--json").json()
    pending = {e["output"]: e["reason"] for e in plan["exports"] if e["status"] == "render"}
    assert pending == {f"out/exports/insta/small/{n}.jpg": "settings changed"
                       for n in ("hero-v1", "hero-v2", "story")}
    assert sorted(run("build", exporting, "--json").json()["exports"]) == [
        f"exports/insta/small/{n}.jpg" for n in ("hero-v1", "hero-v2", "story")]

    # Source: the renditions of the outputs that changed.
    exporting.write_text(exporting.read_text().replace("SECOND STORY", "THIRD STORY"))
    plan = run("plan", exporting, "--json").json()
    assert [e["reason"] for e in plan["exports"] if e["status"] == "render"] == [
        "source changes"]
    assert run("build", exporting, "--json").json()["exports"] == [
        "exports/insta/small/story.jpg"]

    # A deleted or edited rendition is made again; nothing else is.
    (out / "exports/thumb/small/hero-v1.png").unlink()
    (out / "exports/og/small/hero-v2.webp").write_bytes(b"edited")
    plan = run("plan", exporting, "--json").json()
    assert {e["output"]: e["reason"] for e in plan["exports"] if e["status"] == "render"} == {
        "out/exports/thumb/small/hero-v1.png": "output missing",
        "out/exports/og/small/hero-v2.webp": "output modified"}
    assert sorted(run("build", exporting, "--json").json()["exports"]) == [
        "exports/og/small/hero-v2.webp", "exports/thumb/small/hero-v1.png"]


def test_a_removed_export_is_stale_then_cleaned(exporting: Path, run) -> None:
    assert run("build", exporting).code == 0
    exporting.write_text(SIMPLE_CAMPAIGN + EXPORTS.split("[[exports]]\nname = \"thumb\"")[0])
    plan = run("plan", exporting, "--json").json()
    assert plan["stale_exports"] == ["exports/thumb/small/hero-v1.png",
                                     "exports/thumb/small/hero-v2.png"]
    assert run("build", exporting).code == 0
    assert _manifest(exporting)["exports"]["exports/thumb/small/hero-v1.png"]["stale"] is True
    result = run("clean", exporting)
    assert result.code == 0
    assert "removed  out/exports/thumb/small/hero-v1.png" in result.out
    assert not (exporting.parent / "out/exports/thumb").exists()
    assert set(_manifest(exporting)["exports"]) == {
        rel for rel in _manifest(exporting)["exports"] if not rel.startswith("exports/thumb")}


def test_cover_crop_keeps_the_focal_point() -> None:
    # A 400x100 image, red on the left half and blue on the right.
    img = Image.new("RGB", (400, 100), (255, 0, 0))
    img.paste((0, 0, 255), (200, 0, 400, 100))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    for focus, colour in (((0.0, 0.5), (255, 0, 0)), ((1.0, 0.5), (0, 0, 255))):
        square = Export("sq", "1:1", 40, 40, "png", 90, focus)
        with Image.open(io.BytesIO(render(buf.getvalue(), square))) as out:
            assert out.size == (40, 40)
            assert {out.getpixel((x, y)) for x in (0, 20, 39) for y in (0, 39)} == {colour}
    # The box: as large as the target's ratio allows, centred on the focus within bounds.
    assert cover_box(200, 100, 40, 40, (0.5, 0.5)) == (50.0, 0.0, 150.0, 100.0)
    assert cover_box(200, 100, 40, 40, (0.1, 0.5)) == (0.0, 0.0, 100.0, 100.0)
    assert cover_box(100, 200, 100, 50, (0.5, 0.9)) == (0.0, 150.0, 100.0, 200.0)
    assert cover_box(100, 100, 300, 300, (0.5, 0.5)) == (0.0, 0.0, 100.0, 100.0)


@pytest.mark.parametrize(("change", "message"), [
    ('format = "jpg"', "exports[0] (insta).format: Input should be 'png', 'jpg' or 'webp' "
                       "(got a string 'gif')"),
    ("focus = [0.5, 0.25]", "exports[0] (insta).focus[1]: Input should be less than or "
                            "equal to 1"),
    ("quality = 80", "exports[0] (insta).quality: Input should be less than or equal to 100"),
    ('aspect = "9:16"', "exports[0] (insta).aspect: unsupported aspect ratio '9:61'"),
    ('name = "insta"', "exports[0] (nul).name: 'nul' is a reserved file name on Windows"),
    ("width = 90", "exports[0] (insta).widht: unknown key (did you mean 'width'?)"),
])
def test_bad_exports_are_reported_with_their_place(exporting: Path, run, change: str,
                                                   message: str) -> None:
    replacement = {
        'format = "jpg"': 'format = "gif"', "focus = [0.5, 0.25]": "focus = [0.5, 1.25]",
        "quality = 80": "quality = 101", 'aspect = "9:16"': 'aspect = "9:61"',
        'name = "insta"': 'name = "nul"', "width = 90": "widht = 90",
    }[change]
    exporting.write_text(exporting.read_text().replace(change, replacement, 1))
    result = run("build", exporting)
    assert result.code == 2
    assert re.search(rf"{re.escape(str(exporting))}:\d+:\d+: {re.escape(message)}", result.err)
    assert not (exporting.parent / "out").exists()


def test_export_names_and_aspects_must_make_sense(exporting: Path, run) -> None:
    exporting.write_text(exporting.read_text().replace('name = "thumb"', 'name = "OG"')
                         + '\n[[exports]]\nname = "wide"\naspect = "21:9"\nwidth = 10\n'
                           'height = 10\n')
    result = run("plan", exporting)
    assert result.code == 2
    assert "exports[2] (OG).name: duplicate export name 'OG' (also exports[1]" in result.err
    assert "exports[3] (wide).aspect: no asset is built at 21:9 (used: 1:1, 9:16)" in result.err
    exporting.write_text("exports = 3\n" + SIMPLE_CAMPAIGN)
    assert "exports: expected an array of tables [[exports]]" in run("plan", exporting).err


def test_renditions_that_upscale_or_crop_text_are_warned_about(project: Path, run) -> None:
    """A rendition larger than its source looks soft; one whose crop cuts the layout's
    text loses copy: plan says so before, build when it makes them."""
    project.write_text(SIMPLE_CAMPAIGN + """
[[exports]]
name = "big"
aspect = "1:1"
width = 1080
height = 1080

[[exports]]
name = "banner"
aspect = "1:1"
width = 128
height = 32

[[exports]]
name = "fine"
aspect = "1:1"
width = 64
height = 64
""")
    upscale = ("export big: upscales 2 of its 2 sources, up to 8.44x (1x1/small/hero-v1.png "
               "is 128x128 for 1080x1080): they will look soft")
    crop = "export banner: crops away text of the preview layout in 2 of its 2 sources"
    plan = run("plan", project)
    assert f"WARNING: {upscale}" in plan.err and f"WARNING: {crop}" in plan.err
    assert "export fine" not in plan.err
    warnings = run("plan", project, "--json").json()["warnings"]
    assert any(w.startswith(upscale) for w in warnings)
    assert any(w.startswith(crop) for w in warnings)

    build = run("build", project)
    assert build.code == 0
    assert f"WARNING: {upscale}" in build.err and f"WARNING: {crop}" in build.err
    assert "export fine" not in build.err
    # Said when the renditions are made, not on every build after.
    again = run("build", project)
    assert "WARNING" not in again.err
