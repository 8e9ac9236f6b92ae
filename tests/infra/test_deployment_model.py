"""tests/infra/deployment.py evaluates Bicep as ARM would, on small templates written here: what the
infrastructure tests conclude is only as right as this evaluation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import parse_sources
from tests.infra.deployment import Deployment, DeploymentError, Inputs, Joined, Reference, deploy

pytestmark = pytest.mark.infra

ROOT = Path("/snippets")
GROUP = """targetScope = 'subscription'
param cloud string = 'commercial'
resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-test'
  location: 'westeurope'
}
module inner 'inner.bicep' = {
  name: 'inner'
  scope: rg
  params: {
    cloud: cloud
  }
}
output inner object = inner.outputs
"""


def deploy_sources(sources: dict[str, str], **parameters: Any) -> Deployment:
    trees = parse_sources({str(ROOT / name): text for name, text in sources.items()})
    return deploy(
        Inputs(parameters=parameters),
        main=ROOT / "main.bicep",
        trees={Path(name): tree for name, tree in trees.items()},
    )


def inner_outputs(inner: str, **parameters: Any) -> dict[str, Any]:
    outputs: dict[str, Any] = deploy_sources(
        {"main.bicep": GROUP, "inner.bicep": inner}, **parameters
    ).outputs
    return outputs["inner"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("cloud", "expected"), [("commercial", True), ("gcc", True), ("dod", False)])
def test_operators_bind_as_in_bicep(cloud: str, expected: bool) -> None:
    inner = """param cloud string
param on bool = true
output trace bool = on && (cloud == 'commercial' || cloud == 'gcc')
output first string = !on ? 'off' : cloud == 'dod' ? 'dod' : 'other'
"""
    outputs = inner_outputs(inner, cloud=cloud)
    assert outputs["trace"] is expected
    assert outputs["first"] == ("dod" if cloud == "dod" else "other")


def test_loops_with_conditions_deploy_only_the_copies_that_hold() -> None:
    inner = """param cloud string
param names array = ['a', 'b', 'c']
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st1'
}
resource service 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}
resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for name in names: {
    parent: service
    name: name
  }
]
resource grants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (name, i) in names: if (name != 'b') {
    name: guid(tables[i].id)
    scope: tables[i]
    properties: {
      index: i
    }
  }
]
"""
    deployment = deploy_sources({"main.bicep": GROUP, "inner.bicep": inner}, cloud="gcc")
    tables = {
        t.name: t.id for t in deployment.of_type("Microsoft.Storage/storageAccounts/tableServices/tables")
    }
    assert sorted(tables) == ["st1/default/a", "st1/default/b", "st1/default/c"]
    assert tables["st1/default/a"] == (
        "/subscriptions/00000000-0000-4000-8000-00000000a001/resourceGroups/rg-test/providers/"
        "Microsoft.Storage/storageAccounts/st1/tableServices/default/tables/a"
    )
    grants = deployment.of_type("Microsoft.Authorization/roleAssignments")
    assert [(g.scope, g.properties["index"]) for g in grants] == [
        (tables["st1/default/a"], 0),
        (tables["st1/default/c"], 2),
    ]
    assert (
        grants[0].id
        == f"{tables['st1/default/a']}/providers/Microsoft.Authorization/roleAssignments/{grants[0].name}"
    )


def test_a_call_on_its_own_line_in_an_array_is_a_call() -> None:
    # The grammar's known misparse (tests/infra/bicep.py): inside an object, this array's item
    # comes back as `resourceGroup` and `().id` unless repaired.
    inner = """param cloud string
output role object = {
  scopes: [
    resourceGroup().id
  ]
  names: [
    take('abcdef', 3)
    'x'
  ]
}
"""
    role = inner_outputs(inner, cloud="gcc")["role"]
    assert role == {
        "scopes": ["/subscriptions/00000000-0000-4000-8000-00000000a001/resourceGroups/rg-test"],
        "names": ["abc", "x"],
    }


def test_runtime_values_stay_references_to_their_resource() -> None:
    inner = """param cloud string
resource id 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${cloud}'
}
output principal string = id.properties.principalId
output setting string = 'ClientId=${id.properties.clientId};Mode=${string(true)}'
"""
    outputs = inner_outputs(inner, cloud="gcc")
    identity = "/subscriptions/00000000-0000-4000-8000-00000000a001/resourceGroups/rg-test/providers/"
    identity += "Microsoft.ManagedIdentity/userAssignedIdentities/id-gcc"
    assert outputs["principal"] == Reference(identity, ("properties", "principalId"))
    assert outputs["setting"] == Joined(
        ("ClientId=", Reference(identity, ("properties", "clientId")), ";Mode=True")
    )


@pytest.mark.parametrize(
    ("inner", "parameters", "message"),
    [
        ("@allowed(['commercial'])\nparam cloud string\n", {"cloud": "gcc"}, "cloud='gcc' fails @allowed"),
        ("param cloud string\n@minValue(2)\nparam n int = 1\n", {}, "n=1 fails @minValue"),
        ("param cloud string\n", {"cloud": "gcc", "other": 1}, "no parameter"),
        ("param cloud string\noutput o string = format('{0}', cloud)\n", {}, "format() is not modelled"),
        (
            "param cloud string\nresource i 'X.Y/z@1' = {\n  name: 'a'\n}\n"
            "output o bool = i.properties.x == 'y'\n",
            {},
            "known only at deployment",
        ),
        (
            "param cloud string\nmodule m 'br/public:avm/res/x:1.0' = {\n  name: 'm'\n}\n",
            {},
            "not a local file",
        ),
    ],
)  # fmt: skip
def test_what_arm_refuses_or_the_model_does_not_know_fails(
    inner: str, parameters: dict[str, Any], message: str
) -> None:
    # The parameters go to GROUP's main.bicep, which passes `cloud` on to inner.bicep.
    with pytest.raises(DeploymentError, match=re.escape(message)):
        deploy_sources({"main.bicep": GROUP, "inner.bicep": inner}, **parameters)


def test_a_syntax_error_fails_the_parse() -> None:
    with pytest.raises(AssertionError, match="syntax error at line 2"):
        parse_sources({"broken.bicep": "param a string\nvar b = {\n"})


def test_load_text_content_reads_only_files_under_infra() -> None:
    # Bicep inlines the file at build time; a path outside infra/ (or a missing file) would build
    # from something the templates do not hold, so the model refuses it.
    inner = "param cloud string\noutput text string = loadTextContent('../README.md')\n"
    with pytest.raises(DeploymentError, match=re.escape("loadTextContent() of '../README.md': no such file")):
        inner_outputs(inner)
