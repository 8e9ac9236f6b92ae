"""Every setting the code reads is set by the Bicep templates or documented as optional.

The names are derived from the source, not copied: shared/settings/config.py (the only module that reads
the environment) is parsed and every name it passes to `env.get(...)` or to a helper taking
`(env, name, ...)` is resolved, including the composed `AzureWebJobsStorage__*` forms; binding
expressions (`%NAME%`) in the function folders are the host's reads. A recording environment then
proves the parse missed nothing the loaders actually read.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import re
from collections.abc import Iterator, Mapping

import pytest

from shared.settings import config
from tests.infra.tools import INFRA, ROOT

pytestmark = pytest.mark.infra

CONFIG = ROOT / "shared" / "settings" / "config.py"
API_BICEP = INFRA / "app" / "api.bicep"
NAME = re.compile(r"^(?:AzureWebJobsStorage(?:__[A-Za-z]+)?|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)$")
ENV_ARGS = {"env", "source"}

# Read by the code but deliberately not set in Azure; each must be in the README settings table.
DOCUMENTED_OPTIONAL = {
    "AzureWebJobsStorage": "a connection string is for Azurite only; Azure uses the identity-based forms",
    "AzureWebJobsStorage__accountName": "an alternative to the three __*ServiceUri settings Bicep sets",
    "CLIENT_CERTIFICATE_PATH": "a file path for `mia` on a workstation; Azure uses CLIENT_CERTIFICATE",
    "CLIENT_CERTIFICATE_THUMBPRINT": "computed from the certificate when absent",
    "LOGIN_AUTHORITY": "derived from M365_CLOUD; an override for the simulator",
    "MANAGEMENT_API_BASE": "derived from M365_CLOUD; an override for the simulator",
    "MANAGEMENT_API_SCOPE": "derived from MANAGEMENT_API_BASE",
    "CA_BUNDLE": "extra CAs for the simulator or a TLS-inspecting proxy",
    "GRAPH_API_BASE": "derived from M365_CLOUD; an override for the simulator",
    "GRAPH_SCOPE": "derived from M365_CLOUD",
    "WEBSITE_AUTH_ENABLED": "injected by App Service while its authentication is on; never set",
}


class _Resolver:
    """Resolves a string expression to its possible values from constants in scope."""

    def __init__(self, tree: ast.Module) -> None:
        self.bindings: dict[str, set[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    values = self.values(node.value)
                    if values:
                        self.bindings.setdefault(target.id, set()).update(values)
            if (
                isinstance(node, ast.comprehension | ast.For)
                and isinstance(node.target, ast.Name)
                and isinstance(node.iter, ast.Tuple | ast.List)
            ):
                items = [
                    e.value
                    for e in node.iter.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                ]
                if items and len(items) == len(node.iter.elts):
                    self.bindings.setdefault(node.target.id, set()).update(items)

    def values(self, node: ast.AST) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.Name):
            return set(self.bindings.get(node.id, ()))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return {a + b for a, b in itertools.product(self.values(node.left), self.values(node.right))}
        if isinstance(node, ast.JoinedStr):
            parts = [
                self.values(p.value) if isinstance(p, ast.FormattedValue) else self.values(p)
                for p in node.values
            ]
            return {"".join(combo) for combo in itertools.product(*parts)}
        return set()


def _name_arguments(tree: ast.Module) -> Iterator[ast.AST]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        # env.get("NAME", ...) / source.get(...)
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and isinstance(func.value, ast.Name)
            and func.value.id in ENV_ARGS
            and node.args
        ):
            yield node.args[0]
        # helper(env, "NAME", ...)
        elif len(node.args) >= 2 and isinstance(node.args[0], ast.Name) and node.args[0].id in ENV_ARGS:
            yield node.args[1]


def settings_read_by_config() -> set[str]:
    tree = ast.parse(CONFIG.read_text())
    resolver = _Resolver(tree)
    names: set[str] = set()
    for argument in _name_arguments(tree):
        names.update(v for v in resolver.values(argument) if NAME.match(v))
    return names


def settings_read_by_bindings() -> set[str]:
    names: set[str] = set()
    for path in [ROOT / "function_app.py", *ROOT.glob("*/__init__.py")]:
        names.update(re.findall(r"""["']%([A-Za-z_][A-Za-z0-9_]*)%["']""", path.read_text()))
    return names


def bicep_app_settings() -> set[str]:
    text = API_BICEP.read_text()
    block = text.split("// app-settings:begin", 1)[1].split("// app-settings:end", 1)[0]
    return set(re.findall(r"name:\s*'([^']+)'", block))


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        self.data = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.data[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


PROFILES = [
    {},
    {"AzureWebJobsStorage__accountName": "account", "TENANT_ID": "11111111-2222-3333-4444-555555555555"},
    {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "TENANT_ID": "11111111-2222-3333-4444-555555555555",
    },
]


def test_the_source_parse_finds_the_settings_it_should() -> None:
    names = settings_read_by_config()
    # A floor, so a broken parser cannot pass by finding nothing.
    for expected in ("AzureWebJobsStorage", "AzureWebJobsStorage__clientId", "TENANT_ID", "REPORT_PAGE_ROWS"):
        assert expected in names, sorted(names)
    assert {"AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__tableServiceUri"} <= names


@pytest.mark.parametrize("profile", PROFILES, ids=["empty", "identity", "connection-string"])
def test_every_name_the_loaders_read_is_found_by_the_parse(profile: dict[str, str]) -> None:
    parsed = settings_read_by_config()
    loaders = [
        getattr(config, name)
        for name in dir(config)
        if name.startswith("load_") and callable(getattr(config, name))
    ]
    assert loaders
    for loader in loaders:
        env = RecordingEnv(profile)
        with contextlib.suppress(config.SettingsError):
            loader(env)
        missed = sorted(env.asked - parsed)
        assert missed == [], f"{loader.__name__} reads {missed}, which the source parse did not find"


def test_every_setting_is_set_in_bicep_or_documented_optional() -> None:
    read = settings_read_by_config() | settings_read_by_bindings()
    in_bicep = bicep_app_settings()
    missing = sorted(read - in_bicep - set(DOCUMENTED_OPTIONAL))
    assert missing == [], (
        f"settings read by the code but neither set in {API_BICEP.relative_to(ROOT)} (between the "
        f"app-settings markers) nor listed in DOCUMENTED_OPTIONAL here: {missing}"
    )
    stale = sorted(set(DOCUMENTED_OPTIONAL) - read)
    assert stale == [], f"DOCUMENTED_OPTIONAL lists settings nothing reads: {stale}"
    both = sorted(set(DOCUMENTED_OPTIONAL) & in_bicep)
    assert both == [], f"set in Bicep but also listed as optional: {both}"


def test_documented_optional_settings_are_in_the_readme_and_example() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in DOCUMENTED_OPTIONAL:
        assert f"`{name}`" in readme or f"`{name.split('__')[-1]}`" in readme, f"{name} not in README"


def test_every_bicep_setting_is_read_by_something() -> None:
    # Settings the platform reads (telemetry) are fine; anything else would be dead configuration.
    platform = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
    read = settings_read_by_config() | settings_read_by_bindings()
    unused = sorted(bicep_app_settings() - read - platform)
    assert unused == [], f"{API_BICEP.relative_to(ROOT)} sets settings nothing reads: {unused}"
