"""The docs cannot drift from the code: every ``>>>`` example in docs/*.md and README.md runs.

Examples live in fenced code blocks; the text outside the fences is blanked
(keeping line numbers) before doctest reads a file, so a closing fence never
counts as expected output.  The examples of one file share one namespace, in
order.  ``docs/api.md`` is generated: it must equal what ``docs/gen_api.py``
writes from the docstrings today.  The site (mkdocs.yml) lists every page and
builds with ``mkdocs build --strict`` where the docs extra is installed.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
# Pages that explain without computing anything.
WITHOUT_EXAMPLES = {"api.md", "benchmarks.md", "examples.md", "index.md"}
OPTIONS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def code_blocks_only(markdown: str) -> str:
    """``markdown`` with every line outside fenced code blocks (and the fences) blanked."""
    kept, inside = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            kept.append("")
        else:
            kept.append(line if inside else "")
    return "\n".join(kept) + "\n"


def test_there_are_pages():
    assert {"index.md", "getting-started.md", "signal.md", "conv.md", "pooling.md",
            "normalisation.md", "backward.md", "backends.md", "device-arrays.md",
            "examples.md", "math.md", "benchmarks.md", "api.md", "README.md"
            } <= {page.name for page in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_examples_run(page):
    source = code_blocks_only(page.read_text(encoding="utf-8"))
    test = doctest.DocTestParser().get_doctest(source, {}, page.name, str(page), 0)
    if page.name not in WITHOUT_EXAMPLES:
        assert test.examples, f"{page.name} has no >>> examples"
    failures = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)


def test_api_page_is_generated_from_the_docstrings():
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    gen_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_api)
    written = (DOCS / "api.md").read_text(encoding="utf-8")
    assert written == gen_api.render(), "docs/api.md is stale: run python docs/gen_api.py"


def test_getting_started_has_the_readmes_commands():
    """The two install-and-run commands of the README's quick start, verbatim."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2, commands
    getting_started = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    assert all(command in getting_started.splitlines() for command in commands)


def test_every_page_is_in_the_site():
    """mkdocs.yml's nav lists every page of docs/ (mkdocs --strict warns of the others too)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:\n")[1]
    nav = nav.split("\n\n")[0]
    assert {page.name for page in DOCS.glob("*.md")} == set(re.findall(r"([\w-]+\.md)", nav))


def test_api_page_lists_every_public_function():
    """The API reference renders every name of fastcorr.__all__ (aliases by their target)."""
    import fastcorr

    api = (DOCS / "api.md").read_text(encoding="utf-8")
    for name in fastcorr.__all__:
        target = getattr(fastcorr, name).__name__
        assert f"::: fastcorr.{target}\n" in api, name



def test_site_builds_strictly(tmp_path):
    """``mkdocs build --strict`` as .ci/run runs it (skipped without the docs extra)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, env=os.environ | {"NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "api" / "index.html").is_file()
    for picture in (ROOT / "docs" / "img").glob("*.png"):
        assert (tmp_path / "img" / picture.name).is_file()


def test_getting_started_shows_what_fastcorr_info_prints(capsys):
    """Each line of the page's abridged ``fastcorr info`` starts a line that info prints today."""
    from fastcorr import cli

    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    shown = page.split("$ fastcorr info\n")[1].split("```")[0].splitlines()
    assert cli.main(["info"]) == 0
    printed = capsys.readouterr().out.splitlines()
    for line in shown:
        # The stable part of each line: the label before the machine's own values.
        label = re.split(r"\s{2,}|: |\d", line.strip())[0].strip()
        if label and label != "...":
            assert any(out.strip().startswith(label) for out in printed), line
