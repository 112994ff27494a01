"""`qwenbuild init`: a brand repository that builds at once, and never overwrites."""

from __future__ import annotations

from pathlib import Path

from .conftest import REPO, tree_snapshot

EXAMPLE = "projects/example/campaign.toml"


def test_init_scaffolds_a_repository_that_builds_and_checks(tmp_path: Path, run) -> None:
    repo = tmp_path / "brand-assets"
    result = run("init", repo)
    assert result.code == 0, result.err
    for rel in (".gitignore", ".gitattributes", "README.md", EXAMPLE,
                "schema/campaign.schema.json", "templates/poster.j2", "templates/social.j2"):
        assert (repo / rel).is_file(), rel
        assert f"created  {repo}/{rel}" in result.out
    assert f"next: cd {repo} && git init && qwenbuild build {EXAMPLE}" in result.out

    gitignore = (repo / ".gitignore").read_text()
    assert ".qwenbuild/" in gitignore.splitlines()
    assert "projects/*/out/index.html" in gitignore.splitlines()
    assert "# *.png filter=lfs diff=lfs merge=lfs -text" in (repo / ".gitattributes").read_text()
    assert "plan --check" in (repo / "README.md").read_text()
    assert (repo / EXAMPLE).read_text().startswith(
        "#:schema ../../schema/campaign.schema.json\n")
    assert (repo / "schema/campaign.schema.json").read_text() == run("schema").out

    assert run("plan", "--check", repo / EXAMPLE).code == 1  # nothing built yet
    built = run("build", repo / EXAMPLE, "--json")
    assert built.code == 0, built.err
    report = built.json()
    assert report["generated"] == len(report["jobs"]) == 6 and report["failed"] == 0
    assert len(report["exports"]) == 2
    check = run("plan", "--check", repo / EXAMPLE)
    assert check.code == 0, check.out + check.err


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path, run) -> None:
    repo = tmp_path / "brand"
    repo.mkdir()
    (repo / "README.md").write_text("our own readme\n")
    (repo / "logo.svg").write_text("<svg/>")
    before = tree_snapshot(repo)
    result = run("init", repo)
    assert result.code == 2
    assert f"{repo}: README.md already exists; init never overwrites a file" in result.err
    assert tree_snapshot(repo) == before  # nothing written

    forced = run("init", repo, "--force")
    assert forced.code == 0
    # --force never replaces a file of the user's: it is kept, and said per file.
    assert (repo / "README.md").read_text() == "our own readme\n"
    assert (f"kept  {repo}/README.md  (changed since init wrote it, or not init's; "
            "--force --overwrite replaces it)") in forced.out
    assert f"created  {repo}/templates/poster.j2" in forced.out
    assert (repo / "logo.svg").read_text() == "<svg/>"  # not the scaffold's: untouched
    again = run("init", repo)
    assert again.code == 2 and "and 4 more already exist" in again.err


def test_init_force_updates_only_what_init_wrote_and_nobody_changed(
        tmp_path: Path, run, monkeypatch) -> None:
    import hashlib

    import qwenbuild.scaffold as scaffold

    repo = tmp_path / "brand"
    assert run("init", repo).code == 0
    ours = scaffold.scaffold_files()
    # An older qwenbuild wrote this .gitignore (its sha256 is in the released list); the
    # user edited the poster template; the menu template was deleted.
    older = b".qwenbuild/\n"
    (repo / ".gitignore").write_bytes(older)
    released = scaffold.released_versions()
    monkeypatch.setattr(scaffold, "released_versions", lambda: {
        **released, ".gitignore": released[".gitignore"]
        | {hashlib.sha256(older).hexdigest()}})
    (repo / "templates/poster.j2").write_text("{{ copy.headline }} in our house style\n")
    (repo / "templates/menu.j2").unlink()

    result = run("init", repo, "--force", "--json")
    assert result.code == 0, result.err
    actions = result.json()["actions"]
    assert actions[".gitignore"] == "updated"
    assert actions["templates/poster.j2"] == "kept"
    assert actions["templates/menu.j2"] == "created"
    assert actions["README.md"] == "unchanged"
    assert (repo / ".gitignore").read_bytes() == ours[".gitignore"]
    assert (repo / "templates/poster.j2").read_text().endswith("house style\n")
    assert (repo / "templates/menu.j2").read_bytes() == ours["templates/menu.j2"]

    # The second flag replaces the user's changes too, and says so.
    assert run("init", repo, "--overwrite").code == 2  # only with --force
    overwritten = run("init", repo, "--force", "--overwrite")
    assert overwritten.code == 0
    assert f"overwritten  {repo}/templates/poster.j2  (your changes to it are gone)" \
        in overwritten.out
    assert (repo / "templates/poster.j2").read_bytes() == ours["templates/poster.j2"]


def test_every_scaffold_file_is_in_the_released_list() -> None:
    """`init --force` recognises a file it wrote by its sha256: the list must hold the
    version this qwenbuild writes (add the line when a scaffold file changes)."""
    import hashlib

    from qwenbuild.scaffold import RELEASED, released_versions, scaffold_files

    released = released_versions()
    missing = [f"{hashlib.sha256(data).hexdigest()}  {rel}"
               for rel, data in scaffold_files().items()
               if hashlib.sha256(data).hexdigest() not in released.get(rel, frozenset())]
    assert missing == [], f"add these lines to qwenbuild/scaffold_files/{RELEASED}"


def test_init_into_the_current_folder(tmp_path: Path, run, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("init")
    assert result.code == 0
    assert f"created  {EXAMPLE}" in result.out
    assert f"next: git init && qwenbuild build {EXAMPLE}" in result.out
    file = tmp_path / "not-a-folder"
    file.write_text("x")
    assert run("init", file).code == 2


def test_scaffolded_templates_are_the_shipped_templates() -> None:
    """One copy of the templates: the package's, which init writes and the demos use."""
    from qwenbuild.scaffold import scaffold_files

    shipped = {f"templates/{p.name}": p.read_bytes()
               for p in (REPO / "qwenbuild" / "templates").glob("*.j2")}
    written = {k: v for k, v in scaffold_files().items() if k.startswith("templates/")}
    assert written == shipped and len(shipped) >= 4
    assert not (REPO / "templates").exists()
    for campaign in (REPO / "projects").glob("*/*.toml"):
        assert '"../../qwenbuild/templates"' in campaign.read_text(), campaign
