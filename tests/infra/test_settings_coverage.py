"""Every setting the code reads is set by the Bicep templates or documented as optional.

The names are the catalogue's (shared/settings/environment.py), and a recording environment proves
the loaders read exactly those: no name the catalogue lacks, none it lists that nothing reads.
Binding expressions (`%NAME%`) in the function folders are the host's own reads.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

import shared.settings
from shared.settings import CATALOGUE, SettingsError
from tests.infra.tools import INFRA, ROOT

pytestmark = pytest.mark.infra

API_BICEP = INFRA / "app" / "api.bicep"

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
    "LOG_ANALYTICS_ENDPOINT": "derived from M365_CLOUD; an override for the simulator",
    "WEBSITE_AUTH_ENABLED": "injected by App Service while its authentication is on; never set",
    "IP_DATABASE_PATH": "a user-provided .mmdb file; the embedded IP data needs no setting",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "off in Azure: shared/runtime.py configures Azure Monitor",
}

TENANT = "11111111-2222-3333-4444-555555555555"
# Between them, these reach every branch that reads a name: each storage form, and a tenant (which
# turns on Graph and collection's credentials).
PROFILES = [
    {},
    {"AzureWebJobsStorage__accountName": "account", "TENANT_ID": TENANT},
    {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "TENANT_ID": TENANT},
]
LOADERS: list[Callable[[Mapping[str, str]], Any]] = [
    getattr(shared.settings, name) for name in shared.settings.__all__ if name.startswith("load_")
]


def settings_read_by_bindings() -> set[str]:
    names: set[str] = set()
    for path in [ROOT / "function_app.py", *ROOT.glob("*/__init__.py")]:
        names.update(re.findall(r"""["']%([A-Za-z_][A-Za-z0-9_]*)%["']""", path.read_text()))
    return names


def bicep_app_settings() -> set[str]:
    text = API_BICEP.read_text()
    block = text.split("// app-settings:begin", 1)[1].split("// app-settings:end", 1)[0]
    return set(re.findall(r"name:\s*'([^']+)'", block))


def readme_settings_table() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def in_readme_table(name: str, table: str) -> bool:
    # `__queueServiceUri` stands for `AzureWebJobsStorage__queueServiceUri` in a row that names several.
    return f"`{name}`" in table or f"`__{name.split('__')[-1]}`" in table


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


def names_the_loaders_read() -> dict[str, set[str]]:
    """By loader, every name it asked for under any profile."""
    read: dict[str, set[str]] = {}
    for loader in LOADERS:
        for profile in PROFILES:
            env = RecordingEnv(profile)
            with contextlib.suppress(SettingsError):
                loader(env)
            read.setdefault(loader.__name__, set()).update(env.asked)
    return read


def test_every_loader_is_checked() -> None:
    names = {loader.__name__ for loader in LOADERS}
    assert {"load_settings", "load_storage_settings", "load_collection_settings"} <= names
    assert len(names) == 10


def host_settings() -> set[str]:
    """Catalogued settings the Functions host reads (`%NAME%`), not the code."""
    return {name for name, setting in CATALOGUE.items() if setting.host}


def test_the_loaders_read_exactly_the_names_in_the_catalogue() -> None:
    read = names_the_loaders_read()
    code_settings = set(CATALOGUE) - host_settings()
    for loader, names in read.items():
        unknown = sorted(names - code_settings)
        assert unknown == [], f"{loader} reads {unknown}, which the catalogue lacks or the host reads"
    unread = sorted(code_settings - set().union(*read.values()))
    assert unread == [], f"the catalogue lists settings no loader reads: {unread}"
    assert read["load_settings"] == code_settings


def test_the_host_settings_in_the_catalogue_are_exactly_the_binding_expressions() -> None:
    assert settings_read_by_bindings() == host_settings()


def test_every_setting_is_set_in_bicep_or_documented_optional() -> None:
    catalogued, in_bicep = set(CATALOGUE), bicep_app_settings()
    missing = sorted(catalogued - in_bicep - set(DOCUMENTED_OPTIONAL))
    assert missing == [], (
        f"settings in the catalogue but neither set in {API_BICEP.relative_to(ROOT)} (between the "
        f"app-settings markers) nor listed in DOCUMENTED_OPTIONAL here: {missing}"
    )
    stale = sorted(set(DOCUMENTED_OPTIONAL) - catalogued)
    assert stale == [], f"DOCUMENTED_OPTIONAL lists settings the catalogue lacks: {stale}"
    both = sorted(set(DOCUMENTED_OPTIONAL) & in_bicep)
    assert both == [], f"set in Bicep but also listed as optional: {both}"
    required = sorted(name for name, setting in CATALOGUE.items() if setting.required)
    assert required
    assert set(required) <= in_bicep, (
        f"required settings Bicep does not set: {sorted(set(required) - in_bicep)}"
    )


def test_every_bicep_setting_is_in_the_catalogue_or_read_by_the_host() -> None:
    bindings = settings_read_by_bindings()
    # A floor, so a broken pattern cannot pass by finding nothing.
    assert {"FETCH_SCHEDULE", "DELIVER_SCHEDULE", "POISON_SCHEDULE", "RESOLVE_SCHEDULE"} <= bindings
    unused = sorted(bicep_app_settings() - set(CATALOGUE) - bindings)
    assert unused == [], f"{API_BICEP.relative_to(ROOT)} sets settings nothing reads: {unused}"


def test_every_setting_is_in_the_readme_settings_table() -> None:
    table = readme_settings_table()
    for name in [*CATALOGUE, *settings_read_by_bindings()]:
        assert in_readme_table(name, table), f"{name} is not in the README's settings table"
