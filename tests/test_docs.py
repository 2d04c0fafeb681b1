"""The docs cannot drift from the code: every ``>>>`` example in docs/*.md and README.md runs.

Examples live in fenced code blocks; the text outside the fences is blanked
(keeping line numbers) before doctest reads a file, so a closing fence never
counts as expected output.  The examples of one file share one namespace, in
order.  ``docs/api.md`` is generated: it must equal what ``docs/gen_api.py``
writes from the docstrings today.
"""

from __future__ import annotations

import doctest
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
# Pages that explain without computing anything.
WITHOUT_EXAMPLES = {"api.md", "benchmarks.md", "index.md"}
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
    assert {"index.md", "signal.md", "conv.md", "backends.md", "api.md", "math.md",
            "benchmarks.md", "README.md"} <= {page.name for page in PAGES}


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
