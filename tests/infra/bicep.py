"""Bicep source as syntax trees, from tree-sitter's Bicep grammar (installed in .venv-infra).

No Bicep compiler can be installed here (it ships as a .NET binary outside the package registries
this project uses), so tests/infra/deployment.py evaluates these trees the way ARM would. The
grammar gives operator precedence, string interpolation and string-versus-identifier right, which
the pycep parser checkov uses does not (it reads `a && (b == 'x' || b == 'y')` as
`a && (b == ('x' || b == 'y'))`).

One known misparse of the grammar is repaired here: a call on its own line in a multi-line array,
`[\n  resourceGroup().id\n]` inside an object, can come back as the identifier `resourceGroup`
followed by an empty `()`. Bicep needs a newline or a comma between array items, so two items with
nothing between them can only be that misparse; their text is parsed again on its own, which
gives the call. A template with any other syntax error fails the parse.
"""

from __future__ import annotations

import bisect
import functools
import json
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra.tools import INFRA, python_with

_PARSE = r"""
import json, sys
import tree_sitter, tree_sitter_bicep

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
PUNCTUATION = {"(", ")", "[", "]", "{", "}", ",", ":", "'", "${", ".", "=", "?", "@"}


def errors(node):
    if node.is_error or node.is_missing:
        yield node
    for child in node.children:
        yield from errors(child)


def parse(source, name):
    tree = PARSER.parse(source)
    bad = list(errors(tree.root_node))
    if bad:
        where = ", ".join(f"line {n.start_point[0] + 1} col {n.start_point[1] + 1}" for n in bad[:5])
        sys.exit(f"{name}: Bicep syntax error at {where}")
    return tree.root_node


def reparsed_item(source, start, end, name):
    # `var _ = <the two items' text>`: parsed alone, the text is one call expression.
    prefix = b"var _ = "
    root = parse(prefix + source[start:end] + b"\n", name)
    (declaration,) = [c for c in root.children if c.is_named]
    expression = declaration.named_children[-1]
    if expression.end_byte - len(prefix) != end - start:
        sys.exit(f"{name}: could not repair the array item at byte {start}")
    return dump(expression, None, prefix + source[start:end], name, shift=start - len(prefix))


def dump(node, field_name, source, name, shift=0):
    if node.type == "comment":
        return None
    out = {"type": node.type, "named": node.is_named, "field": field_name,
           "start": node.start_byte + shift, "end": node.end_byte + shift}
    if node.child_count == 0:
        out["text"] = node.text.decode()
        return out
    children = []
    kids = list(node.children)
    index = 0
    while index < len(kids):
        child = kids[index]
        following = kids[index + 1] if index + 1 < len(kids) else None
        if (node.type == "array" and child.is_named and child.type == "identifier" and following is not None
                and following.is_named and following.start_byte == child.end_byte):
            children.append(reparsed_item(source, child.start_byte, following.end_byte, name))
            index += 2
            continue
        if child.is_named or child.type not in PUNCTUATION:
            dumped = dump(child, node.field_name_for_child(index), source, name, shift)
            if dumped is not None:
                children.append(dumped)
        index += 1
    out["children"] = children
    return out


sources = json.load(sys.stdin)
print(json.dumps({name: dump(parse(text.encode(), name), None, text.encode(), name)
                  for name, text in sources.items()}))
"""


@dataclass(frozen=True)
class Node:
    """A node of the syntax tree: named nodes, keywords and operators; punctuation is dropped."""

    type: str
    named: bool
    field: str | None
    text: str  # the source text of a leaf; "" for an inner node
    line: int
    children: tuple[Node, ...]

    def named_children(self) -> list[Node]:
        return [child for child in self.children if child.named]

    def child(self, field_name: str) -> Node:
        (found,) = [child for child in self.children if child.field == field_name]
        return found

    def tokens(self) -> Iterator[str]:
        """The keywords and operators among the direct children, e.g. `existing`, `&&`."""
        return (child.text for child in self.children if not child.named)

    def where(self, name: str) -> str:
        return f"{name}:{self.line}"


def _node(raw: Mapping[str, Any], lines: list[int]) -> Node:
    line = bisect.bisect_right(lines, raw["start"])
    return Node(
        type=raw["type"],
        named=raw["named"],
        field=raw["field"],
        text=raw.get("text", ""),
        line=line,
        children=tuple(_node(child, lines) for child in raw.get("children", [])),
    )


def parse_sources(sources: Mapping[str, str]) -> dict[str, Node]:
    """Syntax trees of Bicep texts, by name (for templates written in a test)."""
    completed = subprocess.run(
        [python_with("tree_sitter", "tree_sitter_bicep"), "-c", _PARSE],
        input=json.dumps(dict(sources)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"the Bicep grammar could not parse the templates:\n{completed.stderr}"
    trees: dict[str, Any] = json.loads(completed.stdout)
    parsed = {}
    for name, raw in trees.items():
        encoded = sources[name].encode()
        # Byte offsets where each line starts: a node's line is how many of them it is at or past.
        starts = [0] + [i + 1 for i, byte in enumerate(encoded) if byte == ord("\n")]
        parsed[name] = _node(raw, starts)
    return parsed


@functools.cache
def templates() -> dict[Path, Node]:
    """Every template under infra/, by path."""
    paths = sorted(INFRA.rglob("*.bicep"))
    trees = parse_sources({str(path): path.read_text() for path in paths})
    return {path: trees[str(path)] for path in paths}
