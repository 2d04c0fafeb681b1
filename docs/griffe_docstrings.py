"""Griffe extension for the API reference: fastcorr's docstrings as mkdocstrings should see them.

The docstrings are written for ``help()`` and Sphinx-style NumPy docs; three habits of theirs
would show badly on the site, so before mkdocstrings parses a docstring this rewrites:

* reST roles (``:func:`use_backend```) into links to the API page's entry for a public
  fastcorr name, or into plain code for anything else;
* the names listed under "See Also" into the same links;
* a parameter entry naming several parameters (``stride, padding : ...``) into one entry per
  name, because griffe would give every name of the group the first one's default.

The docstrings themselves stay as they are; mkdocs.yml loads this file (``extensions:``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import griffe

ROLE = re.compile(r":(?:func|meth|class|mod|attr|data|obj):`~?([\w.]+)`")
GROUPED = re.compile(r"^(?P<names>\w+(?:, \w+)+)(?P<rest>\s*:.*)?$")
UNDERLINE = re.compile(r"^-{3,}$")


def _public_names() -> set[str]:
    """``fastcorr.__all__``, read from the source."""
    init = Path(__file__).resolve().parents[1] / "fastcorr" / "__init__.py"
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__all__"
                for target in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


PUBLIC = _public_names()


def _link(name: str) -> str:
    short = name.removeprefix("fastcorr.")
    return f"[`{short}`][fastcorr.{short}]" if short in PUBLIC else f"`{name}`"


def rewrite(text: str) -> str:
    """The docstring ``text`` with roles and See Also linked and parameter groups split."""
    text = ROLE.sub(lambda match: _link(match.group(1)), text)
    lines, out, section = text.split("\n"), [], None
    index = 0
    while index < len(lines):
        line = lines[index]
        if index + 1 < len(lines) and line.strip() and UNDERLINE.match(lines[index + 1].strip()):
            section = line.strip()
            out += [line, lines[index + 1]]
            index += 2
            continue
        grouped = GROUPED.match(line) if section in ("Parameters", "Other Parameters") else None
        if grouped:
            end = index + 1
            while end < len(lines) and lines[end].startswith((" ", "\t")):
                end += 1
            for name in grouped.group("names").split(", "):
                out += [name + (grouped.group("rest") or "")] + lines[index + 1:end]
            index = end
            continue
        if section == "See Also" and line and not line.startswith(" "):
            line = re.sub(r"\b\w+\b", lambda m: _link(m.group()) if m.group() in PUBLIC
                          else m.group(), line)
        out.append(line)
        index += 1
    return "\n".join(out)


class FastcorrDocstrings(griffe.Extension):
    """Apply :func:`rewrite` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
