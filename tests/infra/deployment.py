"""What a deployment of infra/main.bicep creates: its resources, their properties and its outputs.

The templates (tests/infra/bicep.py) are evaluated the way ARM evaluates the JSON that `bicep build`
would make of them: parameters with their defaults and decorators checked, variables, modules with
the parameters they are given and the resource group they are scoped to, resource loops and
conditions, `parent:` and `scope:`. Each deployed resource gets its full ARM name and resource ID.

Values ARM computes at deployment time have stand-ins:
- `uniqueString()` and `guid()` are deterministic hashes of their arguments (ARM's algorithms are
  not published; only equality matters here);
- subscription, tenant and cloud come from `Inputs` (`environment()` is the public cloud's);
- a property of a resource ARM only knows once the resource exists (`identity.properties.principalId`,
  `storage.properties.primaryEndpoints.blob`) is a `Reference` to that resource, and a string that
  interpolates one is a `Joined`: a test compares them with the resource it expects.
Anything the model does not know (a function, an operator, a registry module) fails loudly rather
than evaluating to something plausible.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tests.infra.bicep import Node, templates
from tests.infra.tools import INFRA

RESOURCE_GROUPS = "Microsoft.Resources/resourceGroups"
# environment().authentication.loginEndpoint in the public cloud
# (https://learn.microsoft.com/azure/azure-resource-manager/bicep/bicep-functions-deployment#environment).
PUBLIC_LOGIN_ENDPOINT = "https://login.microsoftonline.com/"


class DeploymentError(Exception):
    """ARM would refuse the deployment, or the templates use something this model does not know."""


@dataclass(frozen=True)
class Reference:
    """A runtime property of a deployed resource: `reference(resource_id).<path>`."""

    resource_id: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class Joined:
    """A string interpolation with at least one Reference among its parts."""

    parts: tuple[str | Reference, ...]


@dataclass(frozen=True)
class Inputs:
    """What a deployment is given besides the parameters."""

    subscription_id: str = "00000000-0000-4000-8000-00000000a001"
    tenant_id: str = "00000000-0000-4000-8000-00000000b001"
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"environmentName": "mia-test", "location": "westeurope"}
    )


@dataclass(frozen=True)
class Resource:
    symbol: str  # its symbolic name in the template
    template: str  # the template that declares it, relative to infra/
    type: str
    api_version: str
    name: str  # the full ARM name: parent/child for a child resource
    id: str
    scope: str | None  # the ID of the resource an extension resource applies to
    body: dict[Any, Any]  # everything but name, parent, scope and dependsOn

    @property
    def properties(self) -> dict[Any, Any]:
        properties: dict[Any, Any] = self.body.get("properties", {})
        return properties


@dataclass(frozen=True)
class _Handle:
    """A resource symbol used in an expression (deployed or `existing`)."""

    type: str
    api_version: str
    name: str
    id: str

    def member(self, name: str) -> Any:
        known = {"id": self.id, "name": self.name, "type": self.type, "apiVersion": self.api_version}
        if name in known:
            return known[name]
        if name == "properties":
            return Reference(self.id, ("properties",))
        raise DeploymentError(f"resource property {name!r} is not modelled")


@dataclass
class Deployment:
    resources: list[Resource]
    outputs: dict[str, Any]
    templates: set[Path]  # every template the deployment uses, main.bicep included
    parameters: dict[str, Any]  # main.bicep's parameters as deployed, defaults included

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type.lower() == type_.lower()]

    def one(self, type_: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(type_) if name is None or r.name.split("/")[-1] == name]
        assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def get(self, resource_id: str) -> Resource:
        (found,) = [r for r in self.resources if r.id.lower() == resource_id.lower()]
        return found

    def children(self, parent: Resource, type_: str) -> list[Resource]:
        return [r for r in self.of_type(type_) if r.id.lower().startswith(parent.id.lower() + "/")]


def deploy(
    inputs: Inputs | None = None,
    *,
    main: Path = INFRA / "main.bicep",
    trees: Mapping[Path, Node] | None = None,
) -> Deployment:
    """Deploy `main` (infra/main.bicep) at subscription scope; `trees` are the templates, by path."""
    inputs = inputs or Inputs()
    trees = trees if trees is not None else templates()
    deployment = Deployment([], {}, set(), {})
    instance = _Instance(
        main, trees, inputs, dict(inputs.parameters), resource_group=None, deployment=deployment
    )
    deployment.parameters = {name: instance.parameter(name) for name in instance.params}
    deployment.outputs = instance.outputs()
    deployment.resources = list(instance.deployed())
    return deployment


def _arm_string(value: Any) -> str:
    # ARM's string(): True/False for booleans, JSON for objects and arrays
    # (https://learn.microsoft.com/azure/azure-resource-manager/templates/template-functions-string#string).
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    raise DeploymentError(f"cannot turn {value!r} into a string before deployment")


def _canonical(value: Any) -> str:
    """Text of a value for the stand-in hashes (runtime values included)."""
    return value if isinstance(value, str) else repr(value)


def _unique_string(*values: Any) -> str:
    digest = hashlib.sha256("\x00".join(map(_canonical, values)).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:13]


def _guid(*values: Any) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "\x00".join(map(_canonical, values))))


def _typed_segments(type_: str, name: str) -> str:
    """`Ns/a/b` and `x/y` -> `Ns/a/x/b/y`, as in a resource ID."""
    namespace, *types = type_.split("/")
    names = name.split("/")
    if len(types) != len(names):
        raise DeploymentError(f"name {name!r} does not fit type {type_}")
    return "/".join([namespace, *(f"{t}/{n}" for t, n in zip(types, names, strict=True))])


def _empty(value: Any) -> bool:
    if value is None or isinstance(value, str | list | dict):
        return not value
    raise DeploymentError(f"empty() of {value!r}")


def _take(value: Any, count: Any) -> Any:
    if isinstance(value, str | list) and isinstance(count, int):
        return value[: max(count, 0)]
    raise DeploymentError(f"take() of {value!r}")


def _union(*values: Any) -> Any:
    if all(isinstance(v, dict) for v in values):
        merged: dict[Any, Any] = {}
        for value in values:
            for key, item in value.items():
                if isinstance(merged.get(key), dict) and isinstance(item, dict):
                    raise DeploymentError("union() of nested objects is not modelled")
                merged[key] = item
        return merged
    if all(isinstance(v, list) for v in values):
        return list(dict.fromkeys(item for value in values for item in value))
    raise DeploymentError(f"union() of {values!r}")


def _lower(value: Any) -> str:
    if not isinstance(value, str):
        raise DeploymentError(f"toLower() of {value!r}")
    return value.lower()


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}
_ARITHMETIC: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}
_ESCAPES = {"\\\\": "\\", "\\'": "'", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


def _is_runtime(value: Any) -> bool:
    return isinstance(value, Reference | Joined)


class _Instance:
    """One template deployed with its parameters into a resource group (None: the subscription)."""

    def __init__(
        self,
        path: Path,
        trees: Mapping[Path, Node],
        inputs: Inputs,
        arguments: dict[str, Any],
        resource_group: str | None,
        deployment: Deployment,
    ) -> None:
        if path not in trees:
            raise DeploymentError(f"no template {path}")
        self.path = path
        self.relative = str(path.relative_to(INFRA)) if path.is_relative_to(INFRA) else str(path)
        self.trees = trees
        self.inputs = inputs
        self.arguments = arguments
        self.resource_group = resource_group
        self.deployment = deployment
        deployment.templates.add(path)
        self.params: dict[str, tuple[Node, list[Node]]] = {}
        self.variables: dict[str, Node] = {}
        self.resources: dict[str, Node] = {}
        self.modules: dict[str, Node] = {}
        self.output_nodes: dict[str, Node] = {}
        self.target_scope = "resourceGroup"
        self._values: dict[str, Any] = {}
        self._evaluating: set[str] = set()
        self._declare(trees[path])
        undeclared = set(arguments) - set(self.params)
        if undeclared:
            raise DeploymentError(f"{self.relative}: no parameter {sorted(undeclared)}")
        expected = "subscription" if resource_group is None else "resourceGroup"
        if self.target_scope != expected:
            raise DeploymentError(
                f"{self.relative} targets {self.target_scope}, deployed at {expected} scope"
            )
        for name in self.params:
            self.parameter(name)

    # Declarations

    def _declare(self, root: Node) -> None:
        decorators: list[Node] = []
        for node in root.named_children():
            if node.type == "decorators":
                decorators = node.named_children()
                continue
            name = node.named_children()[0].text if node.named_children() else ""
            if node.type == "target_scope_assignment":
                self.target_scope = self._evaluate(node.named_children()[0], {})
            elif node.type == "parameter_declaration":
                self.params[name] = (node, decorators)
            elif node.type == "variable_declaration":
                self.variables[name] = node
            elif node.type == "resource_declaration":
                self.resources[name] = node
            elif node.type == "module_declaration":
                self.modules[name] = node
            elif node.type == "output_declaration":
                self.output_nodes[name] = node
            else:
                raise DeploymentError(f"{node.where(self.relative)}: {node.type} is not modelled")
            decorators = []
        symbols = [*self.params, *self.variables, *self.resources, *self.modules]
        if len(symbols) != len(set(symbols)):
            raise DeploymentError(f"{self.relative}: a symbol is declared twice")

    # Symbols

    def _memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._values:
            if key in self._evaluating:
                raise DeploymentError(f"{self.relative}: {key} depends on itself")
            self._evaluating.add(key)
            self._values[key] = compute()
            self._evaluating.discard(key)
        return self._values[key]

    def parameter(self, name: str) -> Any:
        return self._memo(f"param {name}", lambda: self._parameter(name))

    def _parameter(self, name: str) -> Any:
        node, decorators = self.params[name]
        parts = node.named_children()
        if name in self.arguments:
            value = self.arguments[name]
        elif len(parts) > 2:
            value = self._evaluate(parts[2], {})
        else:
            raise DeploymentError(f"{node.where(self.relative)}: parameter {name} has no value")
        self._check_type(name, parts[1], value, node)
        for decorator in decorators:
            self._check_decorator(name, decorator, value)
        return value

    def _check_type(self, name: str, type_node: Node, value: Any, node: Node) -> None:
        kinds = {"string": str, "int": int, "bool": bool, "array": list, "object": dict}
        declared = next(type_node.named_children()[0].tokens(), type_node.text)
        wanted = kinds.get(declared)
        if wanted is None:
            raise DeploymentError(f"{node.where(self.relative)}: parameter type {declared!r} is not modelled")
        if _is_runtime(value) and wanted is str:
            return
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise DeploymentError(f"{node.where(self.relative)}: {name} is a {declared}, got {value!r}")

    def _check_decorator(self, name: str, decorator: Node, value: Any) -> None:
        (call,) = decorator.named_children()
        function = call.child("function").text
        arguments = [self._evaluate(arg, {}) for arg in call.child("arguments").named_children()]
        where = decorator.where(self.relative)
        if function in ("description", "metadata", "secure", "export", "sealed"):
            return
        if _is_runtime(value):
            return
        failed: dict[str, Callable[[], bool]] = {
            "allowed": lambda: value not in arguments[0],
            "minValue": lambda: value < arguments[0],
            "maxValue": lambda: value > arguments[0],
            "minLength": lambda: len(value) < arguments[0],
            "maxLength": lambda: len(value) > arguments[0],
        }
        if function not in failed:
            raise DeploymentError(f"{where}: decorator @{function} is not modelled")
        if failed[function]():
            raise DeploymentError(f"{where}: {name}={value!r} fails @{function}({arguments[0]!r})")

    def variable(self, name: str) -> Any:
        return self._memo(
            f"var {name}", lambda: self._evaluate(self.variables[name].named_children()[-1], {})
        )

    def resource(self, name: str) -> _Handle | list[_Handle]:
        handles: _Handle | list[_Handle] = self._memo(
            f"resource {name}", lambda: self._resource_handles(name)
        )
        return handles

    def _resource_handles(self, name: str) -> _Handle | list[_Handle]:
        node = self.resources[name]
        declared = self._type_of(node)
        value = node.named_children()[-1]
        if value.type == "for_statement":
            return [self._handle(declared, body, env, node) for body, env, _ in self._iterations(value, {})]
        body, env, _ = self._single(value, {})
        return self._handle(declared, body, env, node)

    def module(self, name: str) -> _Instance:
        instance: _Instance = self._memo(f"module {name}", lambda: self._module_instance(name))
        return instance

    def _module_instance(self, name: str) -> _Instance:
        node = self.modules[name]
        source = self._evaluate(node.named_children()[1], {})
        if not isinstance(source, str) or ":" in source or source.startswith("br/"):
            raise DeploymentError(f"{node.where(self.relative)}: module {source!r} is not a local file")
        value = node.named_children()[-1]
        if value.type != "object":
            raise DeploymentError(
                f"{node.where(self.relative)}: module loops and conditions are not modelled"
            )
        body = self._object_nodes(value)
        scope = self.resource_group
        if "scope" in body:
            target = self._evaluate(body["scope"], {})
            if not isinstance(target, _Handle) or target.type != RESOURCE_GROUPS:
                raise DeploymentError(f"{node.where(self.relative)}: module scope must be a resource group")
            scope = target.name
        if scope is None:
            raise DeploymentError(f"{node.where(self.relative)}: module {name} needs a resource group scope")
        params = self._evaluate(body["params"], {}) if "params" in body else {}
        if "dependsOn" in body:
            self._evaluate(body["dependsOn"], {})  # each entry must name a declared symbol
        path = (self.path.parent / PurePosixPath(source)).resolve()
        return _Instance(path, self.trees, self.inputs, params, scope, self.deployment)

    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = self._memo(
            "outputs",
            lambda: {
                name: self._evaluate(n.named_children()[-1], {}) for name, n in self.output_nodes.items()
            },
        )
        return outputs

    # Resources

    def _type_of(self, node: Node) -> tuple[str, str]:
        declared = self._evaluate(node.named_children()[1], {})
        type_, _, api_version = declared.partition("@")
        if not api_version:
            raise DeploymentError(f"{node.where(self.relative)}: {declared!r} has no API version")
        return type_, api_version

    def _single(self, value: Node, env: dict[str, Any]) -> tuple[Node, dict[str, Any], bool]:
        """(body, loop names, deployed?) of a non-loop declaration: `{...}` or `if (c) {...}`."""
        if value.type == "if_statement":
            condition, body = value.named_children()
            holds = self._evaluate(condition, env)
            if not isinstance(holds, bool):
                raise DeploymentError(f"{value.where(self.relative)}: condition is not a bool")
            return body, env, holds
        return value, env, True

    def _iterations(self, loop: Node, env: dict[str, Any]) -> Iterator[tuple[Node, dict[str, Any], bool]]:
        names_node, iterable_node = loop.named_children()[:2]
        body = loop.child("body")
        items = self._evaluate(iterable_node, env)
        if not isinstance(items, list):
            raise DeploymentError(f"{loop.where(self.relative)}: a loop over {items!r}")
        if names_node.type == "for_loop_parameters":
            item_name, index_name = (n.text for n in names_node.named_children())
        else:
            item_name, index_name = names_node.text, None
        for index, item in enumerate(items):
            names = {**env, item_name: item}
            if index_name:
                names[index_name] = index
            yield self._single(body, names)

    def _object_nodes(self, node: Node) -> dict[str, Node]:
        found = {}
        for prop in node.named_children():
            key, value = prop.named_children()
            found[key.text if key.type == "identifier" else self._evaluate(key, {})] = value
        return found

    def _handle(self, declared: tuple[str, str], body_node: Node, env: dict[str, Any], node: Node) -> _Handle:
        type_, api_version = declared
        body = self._object_nodes(body_node)
        name = self._evaluate(body["name"], env)
        if not isinstance(name, str):
            raise DeploymentError(f"{node.where(self.relative)}: a resource name known only at deployment")
        if "parent" in body:
            parent = self._evaluate(body["parent"], env)
            if not isinstance(parent, _Handle) or type_.lower().rsplit("/", 1)[0] != parent.type.lower():
                raise DeploymentError(f"{node.where(self.relative)}: {type_} cannot be a child of {parent!r}")
            return _Handle(
                type_, api_version, f"{parent.name}/{name}", f"{parent.id}/{type_.rsplit('/', 1)[1]}/{name}"
            )
        if "scope" in body:
            target = self._evaluate(body["scope"], env)
            if not isinstance(target, _Handle):
                raise DeploymentError(f"{node.where(self.relative)}: scope {target!r} is not a resource")
            return _Handle(type_, api_version, name, f"{target.id}/providers/{type_}/{name}")
        subscription = f"/subscriptions/{self.inputs.subscription_id}"
        if type_.lower() == RESOURCE_GROUPS.lower() and self.resource_group is None:
            return _Handle(type_, api_version, name, f"{subscription}/resourceGroups/{name}")
        if self.resource_group is None:
            return _Handle(
                type_, api_version, name, f"{subscription}/providers/{_typed_segments(type_, name)}"
            )
        group = f"{subscription}/resourceGroups/{self.resource_group}"
        return _Handle(type_, api_version, name, f"{group}/providers/{_typed_segments(type_, name)}")

    def deployed(self) -> Iterator[Resource]:
        """The resources this template and its modules create, in declaration order."""
        for symbol, node in self.resources.items():
            if "existing" in node.tokens():
                continue
            value = node.named_children()[-1]
            handles = self.resource(symbol)
            if value.type == "for_statement":
                copies = list(self._iterations(value, {}))
                assert isinstance(handles, list)
                for (body, env, holds), handle in zip(copies, handles, strict=True):
                    if holds:
                        yield self._resource(symbol, handle, body, env)
            else:
                body, env, holds = self._single(value, {})
                assert isinstance(handles, _Handle)
                if holds:
                    yield self._resource(symbol, handle=handles, body_node=body, env=env)
        for name in self.modules:
            module = self.module(name)
            module.outputs()
            yield from module.deployed()

    def _resource(self, symbol: str, handle: _Handle, body_node: Node, env: dict[str, Any]) -> Resource:
        nodes = self._object_nodes(body_node)
        body = {key: self._evaluate(value, env) for key, value in nodes.items()}
        scope = body.get("scope")
        for key in ("name", "parent", "scope", "dependsOn"):
            body.pop(key, None)
        return Resource(
            symbol=symbol,
            template=self.relative,
            type=handle.type,
            api_version=handle.api_version,
            name=handle.name,
            id=handle.id,
            scope=scope.id if isinstance(scope, _Handle) else None,
            body=body,
        )

    # Expressions

    def _lookup(self, name: str, env: dict[str, Any], node: Node) -> Any:
        if name in env:
            return env[name]
        if name in self.params:
            return self.parameter(name)
        if name in self.variables:
            return self.variable(name)
        if name in self.resources:
            return self.resource(name)
        if name in self.modules:
            return self.module(name)
        raise DeploymentError(f"{node.where(self.relative)}: {name!r} is not declared")

    def _evaluate(self, node: Node, env: dict[str, Any]) -> Any:
        evaluator: Callable[[Node, dict[str, Any]], Any] | None = getattr(self, f"_eval_{node.type}", None)
        if evaluator is None:
            raise DeploymentError(f"{node.where(self.relative)}: {node.type} is not modelled")
        return evaluator(node, env)

    def _eval_string(self, node: Node, env: dict[str, Any]) -> Any:
        parts: list[str | Reference] = []
        for part in node.named_children():
            if part.type == "string_content":
                parts.append(part.text)
            elif part.type == "escape_sequence":
                if part.text not in _ESCAPES:
                    raise DeploymentError(f"{part.where(self.relative)}: escape {part.text} is not modelled")
                parts.append(_ESCAPES[part.text])
            elif part.type == "interpolation":
                value = self._evaluate(part.named_children()[0], env)
                if isinstance(value, Joined):
                    parts.extend(value.parts)
                elif isinstance(value, Reference):
                    parts.append(value)
                else:
                    parts.append(_arm_string(value))
            else:
                raise DeploymentError(f"{part.where(self.relative)}: {part.type} in a string")
        merged: list[str | Reference] = []
        for piece in parts:
            if isinstance(piece, str) and merged and isinstance(merged[-1], str):
                merged[-1] += piece
            elif piece != "":
                merged.append(piece)
        if all(isinstance(piece, str) for piece in merged):
            return "".join(str(piece) for piece in merged)
        return merged[0] if len(merged) == 1 else Joined(tuple(merged))

    def _eval_number(self, node: Node, env: dict[str, Any]) -> int:
        return int(node.text)

    def _eval_boolean(self, node: Node, env: dict[str, Any]) -> bool:
        return next(node.tokens(), node.text) == "true"

    def _eval_null(self, node: Node, env: dict[str, Any]) -> None:
        return None

    def _eval_identifier(self, node: Node, env: dict[str, Any]) -> Any:
        return self._lookup(node.text, env, node)

    def _eval_parenthesized_expression(self, node: Node, env: dict[str, Any]) -> Any:
        inner = node.named_children()
        if len(inner) != 1:
            raise DeploymentError(
                f"{node.where(self.relative)}: a parenthesized expression of {len(inner)} parts"
            )
        return self._evaluate(inner[0], env)

    def _eval_array(self, node: Node, env: dict[str, Any]) -> list[Any]:
        return [self._evaluate(item, env) for item in node.named_children()]

    def _eval_object(self, node: Node, env: dict[str, Any]) -> dict[Any, Any]:
        return {key: self._evaluate(value, env) for key, value in self._object_nodes(node).items()}

    def _eval_for_statement(self, node: Node, env: dict[str, Any]) -> list[Any]:
        return [self._evaluate(body, names) for body, names, holds in self._iterations(node, env) if holds]

    def _eval_member_expression(self, node: Node, env: dict[str, Any]) -> Any:
        target = self._evaluate(node.child("object"), env)
        name = node.child("property").text
        if isinstance(target, _Handle):
            return target.member(name)
        if isinstance(target, _Instance):
            if name != "outputs":
                raise DeploymentError(
                    f"{node.where(self.relative)}: module property {name!r} is not modelled"
                )
            return target.outputs()
        if isinstance(target, Reference):
            return Reference(target.resource_id, (*target.path, name))
        if isinstance(target, dict) and name in target:
            return target[name]
        raise DeploymentError(f"{node.where(self.relative)}: no property {name!r} in {target!r}")

    def _eval_subscript_expression(self, node: Node, env: dict[str, Any]) -> Any:
        target = self._evaluate(node.child("object"), env)
        index = self._evaluate(node.child("index"), env)
        if isinstance(target, list) and isinstance(index, int) and 0 <= index < len(target):
            return target[index]
        if isinstance(target, dict) and index in target:
            return target[index]
        raise DeploymentError(f"{node.where(self.relative)}: cannot index {target!r} with {index!r}")

    def _eval_ternary_expression(self, node: Node, env: dict[str, Any]) -> Any:
        condition = self._evaluate(node.child("condition"), env)
        if not isinstance(condition, bool):
            raise DeploymentError(f"{node.where(self.relative)}: condition {condition!r} is not a bool")
        return self._evaluate(node.child("consequence" if condition else "alternative"), env)

    def _eval_unary_expression(self, node: Node, env: dict[str, Any]) -> Any:
        (operator,) = node.tokens()
        value = self._evaluate(node.named_children()[0], env)
        if operator == "!" and isinstance(value, bool):
            return not value
        if operator == "-" and isinstance(value, int) and not isinstance(value, bool):
            return -value
        raise DeploymentError(f"{node.where(self.relative)}: {operator}{value!r}")

    def _eval_binary_expression(self, node: Node, env: dict[str, Any]) -> Any:
        operator = node.child("operator").text
        left = self._evaluate(node.child("left"), env)
        right = self._evaluate(node.child("right"), env)
        where = node.where(self.relative)
        if operator in ("&&", "||") and isinstance(left, bool) and isinstance(right, bool):
            return (left and right) if operator == "&&" else (left or right)
        if _is_runtime(left) or _is_runtime(right):
            raise DeploymentError(f"{where}: {operator} of values known only at deployment")
        if operator in ("==", "!="):
            return (left == right) is (operator == "==")
        if operator in ("=~", "!~") and isinstance(left, str) and isinstance(right, str):
            return (left.lower() == right.lower()) is (operator == "=~")
        if operator == "??":
            return right if left is None else left
        numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
        if operator in _COMPARISONS and numbers:
            return _COMPARISONS[operator](left, right)
        if operator in _ARITHMETIC and numbers:
            return _ARITHMETIC[operator](left, right)
        raise DeploymentError(f"{where}: {left!r} {operator} {right!r} is not modelled")

    def _eval_call_expression(self, node: Node, env: dict[str, Any]) -> Any:
        name = node.child("function").text
        arguments = [self._evaluate(arg, env) for arg in node.child("arguments").named_children()]
        functions = self._functions()
        if name not in functions:
            raise DeploymentError(f"{node.where(self.relative)}: function {name}() is not modelled")
        return functions[name](*arguments)

    def _functions(self) -> dict[str, Callable[..., Any]]:
        subscription_id = f"/subscriptions/{self.inputs.subscription_id}"
        return {
            "toLower": _lower,
            "uniqueString": _unique_string,
            "guid": _guid,
            "take": _take,
            "empty": _empty,
            "union": _union,
            "string": _arm_string,
            "loadTextContent": self._load_text_content,
            "subscription": lambda: {
                "id": subscription_id,
                "subscriptionId": self.inputs.subscription_id,
                "tenantId": self.inputs.tenant_id,
            },
            "tenant": lambda: {"tenantId": self.inputs.tenant_id},
            "environment": lambda: {
                "name": "AzureCloud",
                "authentication": {"loginEndpoint": PUBLIC_LOGIN_ENDPOINT},
            },
            "resourceGroup": self._resource_group,
            "subscriptionResourceId": lambda type_, *names: (
                f"{subscription_id}/providers/{_typed_segments(type_, '/'.join(names))}"
            ),
        }

    def _load_text_content(self, path: Any) -> str:
        # Bicep reads the file beside the template at build time and inlines its text
        # (https://learn.microsoft.com/azure/azure-resource-manager/bicep/bicep-functions-files#loadtextcontent).
        if not isinstance(path, str):
            raise DeploymentError(f"{self.relative}: loadTextContent() of {path!r}")
        source = (self.path.parent / PurePosixPath(path)).resolve()
        if not source.is_relative_to(INFRA) or not source.is_file():
            raise DeploymentError(
                f"{self.relative}: loadTextContent() of {path!r}: no such file under infra/"
            )
        return source.read_text(encoding="utf-8")

    def _resource_group(self) -> dict[str, str]:
        if self.resource_group is None:
            raise DeploymentError(f"{self.relative}: resourceGroup() at subscription scope")
        group_id = f"/subscriptions/{self.inputs.subscription_id}/resourceGroups/{self.resource_group}"
        return {"id": group_id, "name": self.resource_group, "type": RESOURCE_GROUPS}
