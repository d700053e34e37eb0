"""The README's Python tour runs as written, and returns what it says it returns."""

from __future__ import annotations

import ast
import re

import pytest

from .conftest import REPO, data_dir

pytestmark = pytest.mark.data

CHECKED = re.compile(r"^(?P<indent>\s*)(?P<expr>\S.*?)\s*#\s*->\s*(?P<value>.+?)\s*$")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def checked_source(block: str) -> tuple[str, int]:
    """The block with every ``expr  # -> value`` line turned into a check of that value."""
    lines, checks = [], 0
    for line in block.splitlines():
        match = CHECKED.match(line)
        if match:
            ast.literal_eval(match["value"])  # the README promises a literal
            lines.append(f"{match['indent']}_check(({match['expr']}), ({match['value']}), {line.strip()!r})")
            checks += 1
        else:
            lines.append(line)
    return "\n".join(lines), checks


def _check(actual, expected, line: str) -> None:
    assert actual == pytest.approx(expected, rel=1e-3, abs=1e-6) if _numeric(expected) else actual == expected, (
        f"{line}: got {actual!r}"
    )


def _numeric(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return (
        isinstance(value, tuple)
        and any(isinstance(v, float) for v in value)
        and all(isinstance(v, (bool, int, float)) for v in value)
    )


def test_the_python_tour_runs_and_returns_what_it_says(tmp_path, monkeypatch):
    examples = data_dir("face_recognition_examples", "examples")
    happy = data_dir("happyhouse", "images")
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg"):
        (tmp_path / name).symlink_to(examples / name)
    for name in ("younes.jpg", "kian.jpg", "camera_0.jpg", "camera_2.jpg"):
        (tmp_path / name).symlink_to(happy / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "none.json"))
    blocks = python_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    tour = next(b for b in blocks if "facegate.Gallery(" in b and "import facegate" in b)
    source, checks = checked_source(tour)
    assert checks == 8
    exec(compile(source, "README.md", "exec"), {"_check": _check})


def test_check_lines_compare_values():
    source, checks = checked_source("x = 1\nx + 1  # -> 2\n")
    assert checks == 1 and "_check((x + 1), (2), 'x + 1  # -> 2')" in source
    with pytest.raises(AssertionError, match="got 2"):
        exec(source.replace("(2),", "(3),"), {"_check": _check})


def transcript(text: str, first_command: str) -> list[tuple[str, list[str]]]:
    """The ``$ command`` lines of the text block that starts with ``first_command``, each
    with the output lines the README shows for it."""
    block = next(b for b in re.findall(r"```text\n(.*?)```", text, flags=re.S) if b.startswith(first_command))
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:].split("  #")[0].strip(), []))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_gallery_transcript_prints_what_the_readme_shows(tmp_path, monkeypatch):
    import shlex

    from click.testing import CliRunner

    from facegate.cli import main

    happy = data_dir("happyhouse", "images")
    for name in ("younes", "kian", "benoit", "bertrand"):
        (tmp_path / f"{name}.jpg").symlink_to(happy / f"{name}.jpg")
    for name in ("camera_0.jpg", "camera_2.jpg"):
        (tmp_path / name).symlink_to(happy / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEGATE_GALLERY", str(tmp_path / "office.sqlite"))
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "none.json"))
    runner = CliRunner()
    for name in ("younes", "kian", "benoit", "bertrand"):
        assert runner.invoke(main, ["enroll", name, f"{name}.jpg"]).exit_code == 0
    steps = transcript((REPO / "README.md").read_text(encoding="utf-8"), "$ facegate people")
    assert [command.split()[1] for command, _ in steps] == ["people", "verify", "verify", "verify"]
    for command, shown in steps:
        result = runner.invoke(main, shlex.split(command)[1:])
        assert result.output.splitlines() == shown, command


@pytest.mark.slow
def test_your_own_office_runs_as_written(tmp_path):
    """The README's "Your own office" block, run by bash from a folder laid out like a clone."""
    import os
    import subprocess

    shared = data_dir()
    work = tmp_path / "clone"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared.parent)
    (work / ".venv").symlink_to(REPO / ".venv")
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "source .venv/bin/activate" in b)
    env = {**os.environ, "FACEGATE_THRESHOLDS": str(tmp_path / "none.json")}
    out = subprocess.run(["bash", "-e", "-c", block], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "open the door" in out.stdout and "It's obama, the distance is 0.08" in out.stdout
    assert (work / "who.csv").read_text().startswith("photo,face,identity,distance,threshold,error")
    assert sorted(p.name for p in (work / "crops").iterdir()) == ["two_people_face0.png", "two_people_face1.png"]
    assert (work / "embeddings.jsonl").read_text().count("\n") == 9


def test_the_omniglot_extraction_gives_the_transcripts_files(tmp_path):
    import subprocess

    from PIL import Image

    data_dir("omniglot")
    (tmp_path / "clone").mkdir()
    (tmp_path / "shared").symlink_to(data_dir().parent)
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "images_evaluation.zip" in b)
    out = subprocess.run(
        ["bash", "-e", "-c", block], cwd=tmp_path / "clone", capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in (tmp_path / "clone").iterdir())
    assert len(names) == 12 and "atlantean01_drawer1.png" in names and "kannada12_drawer1.png" in names
    # every file the transcript names exists, and is one 105x105 drawing
    transcript = next(b for b in re.findall(r"```text\n(.*?)```", text, flags=re.S) if "atlantean01" in b)
    for name in set(re.findall(r"\b\w+_drawer\d\.png", transcript)):
        assert Image.open(tmp_path / "clone" / name).size == (105, 105), name
