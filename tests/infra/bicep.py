"""The Bicep templates as parsed structures, for checks on what they declare.

No Bicep compiler runs here, so the templates are parsed with pycep, the parser checkov itself uses
(installed in .venv-infra with checkov). Its JSON names a variable, parameter or resource by a bare
string: `Template.value` resolves variables, and `Template.resource` follows a reference (including
`collection[i]` in a loop) to the resource it names.
"""

from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from typing import Any

from tests.infra.tools import INFRA, tool

_PARSE = """
import json, sys
from pathlib import Path
from pycep import BicepParser
parser = BicepParser()
print(json.dumps({path: parser.parse(file_path=Path(path)) for path in sys.argv[1:]}))
"""


@functools.cache
def _parsed() -> dict[str, Any]:
    paths = sorted(str(p) for p in INFRA.rglob("*.bicep"))
    completed = subprocess.run(
        [tool("python"), "-c", _PARSE, *paths], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, f"pycep could not parse the templates:\n{completed.stderr}"
    parsed: dict[str, Any] = json.loads(completed.stdout)
    return parsed


@dataclass(frozen=True)
class Resource:
    name: str
    type: str
    existing: bool
    config: dict[str, Any]  # the body; for a loop, the body of one iteration
    loop: dict[str, Any] | None  # {"loop_type": ..., "condition": ...} for a resource loop


class Template:
    def __init__(self, relative: str) -> None:
        self.path = INFRA / relative
        self.raw: dict[str, Any] = _parsed()[str(self.path)]
        self.variables: dict[str, Any] = self.raw.get("variables", {})
        self.parameters: dict[str, Any] = self.raw.get("parameters", {})
        self.modules: dict[str, Any] = self.raw.get("modules", {})
        self.resources: dict[str, Resource] = {}
        for name, body in self.raw.get("resources", {}).items():
            config = body["config"]
            loop = None
            if "loop_type" in config:
                loop = {"loop_type": config["loop_type"], "condition": config.get("condition")}
                config = config["config"]
            self.resources[name] = Resource(name, body["type"], bool(body["existing"]), config, loop)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type.lower() == type_.lower()]

    def value(self, node: Any) -> Any:
        """A variable's value in place of its name (recursively); anything else as it is."""
        if isinstance(node, str) and node in self.variables:
            return self.value(self.variables[node]["value"])
        if isinstance(node, list):
            return [self.value(item) for item in node]
        return node

    def resource(self, ref: Any) -> Resource:
        """The resource a reference names: `name`, or `collection[i]` inside a loop."""
        if isinstance(ref, dict) and ref.get("operator", {}).get("type") == "index_accessor":
            ref = ref["operator"]["operands"]["operand_1"]
        assert isinstance(ref, str), f"{ref!r} is not a resource reference"
        assert ref in self.resources, f"{ref!r} names no resource in {self.path}"
        return self.resources[ref]

    def parent_chain(self, resource: Resource) -> list[Resource]:
        """The resource, its parent, its parent's parent, ... (by `parent:`)."""
        chain = [resource]
        while "parent" in chain[-1].config:
            chain.append(self.resource(chain[-1].config["parent"]))
        return chain


def property_of(node: Any) -> tuple[str, str] | None:
    """(`symbol`, `property`) for an expression `symbol.property`, else None."""
    if isinstance(node, dict) and node.get("operator", {}).get("type") == "property_accessor":
        operands = node["operator"]["operands"]
        if isinstance(operands["operand_1"], str) and isinstance(operands["operand_2"], str):
            return operands["operand_1"], operands["operand_2"]
    return None


def module_output(node: Any) -> tuple[str, str] | None:
    """(`module`, `output`) for an expression `module.outputs.output`, else None."""
    if isinstance(node, dict) and node.get("operator", {}).get("type") == "property_accessor":
        operands = node["operator"]["operands"]
        inner = property_of(operands["operand_2"])
        if isinstance(operands["operand_1"], str) and inner and inner[0] == "outputs":
            return operands["operand_1"], inner[1]
    return None


def function_call(node: Any) -> tuple[str, dict[str, Any]] | None:
    if isinstance(node, dict) and "function" in node:
        return node["function"]["type"], node["function"].get("parameters") or {}
    return None
