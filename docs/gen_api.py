"""Write docs/api.md: every public name of fastcorr, one section per family.

Each section opens with a table of its functions (signature-free name and the
docstring's one-line summary) and then one ``::: fastcorr.NAME`` block per
function, which mkdocstrings renders from the NumPy-style docstring (parameters,
returns, examples). The docstrings are the one source of truth; this script only
decides the grouping and order, from ``fastcorr.__all__``.

Run ``python docs/gen_api.py`` after adding, removing or re-summarising a public
name; ``tests/test_docs.py`` fails while api.md differs from what this writes.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fastcorr  # noqa: E402

# Per defining module, in page order: the section's title and its guide page (title, link).
SECTIONS = {
    "fastcorr.signal": ("Signal family (SciPy-compatible)", ("Signal correlation", "signal.md")),
    "fastcorr.conv": ("Network family: convolutions and im2col",
                      ("Network convolution and im2col", "conv.md")),
    "fastcorr._shapes": ("Network family: output shapes",
                         ("Output shapes", "conv.md#output-shapes")),
    "fastcorr.pool": ("Network family: pooling", ("Pooling", "pooling.md")),
    "fastcorr.norm": ("Network family: normalisation", ("Normalisation", "normalisation.md")),
    "fastcorr.conv_backward": ("Network family: gradients and transposed convolution",
                               ("Backward passes", "backward.md")),
    "fastcorr._dispatch": ("Backends and threads", ("Backends and dispatch", "backends.md")),
}


def summary(obj) -> str:
    """The docstring's first paragraph on one line, reST markup turned into Markdown."""
    first = (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")
    first = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", first)
    return first.replace("``", "`").replace("|", "\\|")


def render() -> str:
    """The text of api.md."""
    functions = {module: [] for module in SECTIONS}
    aliases = []
    for name in sorted(fastcorr.__all__):
        obj = getattr(fastcorr, name)
        if obj.__name__ != name:  # im2col, col2im
            aliases.append((name, obj.__name__))
        else:
            functions.setdefault(obj.__module__, []).append((name, obj))
    lines = [
        "# API reference",
        "",
        "Every public name of `fastcorr`, grouped by family, rendered from the docstrings "
        "(`help(fastcorr.NAME)` shows the same text). Every function also takes the "
        "keyword-only `backend=`, explained in [Backends and dispatch](backends.md); every "
        "example below runs in the test suite (`tests/test_doctests.py`). This page is "
        "written by `python docs/gen_api.py`.",
        "",
    ]
    if aliases:
        lines += ["Aliases: " + ", ".join(
            f"`{alias}` is [`{target}`][fastcorr.{target}]" for alias, target in aliases) + ".",
            ""]
    for module, members in functions.items():
        if not members:
            continue
        title, guide = SECTIONS.get(module, (module, None))
        lines += [f"## {title}", ""]
        if guide:
            lines += [f"Guide: [{guide[0]}]({guide[1]}).", ""]
        lines += ["| function | summary |", "|---|---|"]
        lines += [f"| [`{name}`][fastcorr.{name}] | {summary(obj)} |" for name, obj in members]
        lines.append("")
        for name, _ in members:
            lines += [f"::: fastcorr.{name}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    (ROOT / "docs" / "api.md").write_text(render(), encoding="utf-8")
    print(f"wrote {ROOT / 'docs' / 'api.md'}")
