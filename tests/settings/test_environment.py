"""shared/settings/environment.py: the catalogue of every setting, and the typed readers that take
their defaults from it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import CATALOGUE, Capability, SettingsError, load_settings
from shared.settings.environment import Environment

pytestmark = pytest.mark.unit

BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "TENANT_ID": "4c0e6b1a-9d2f-4e37-8a15-2b7f0c9d3e61",
}
ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = ["shared", "mia", "fetch_audit", "enrich_trace", "report_http", "health_http", "deliver_alerts",
            "watch_poison", "resolve_subjects", "scope_http", "advance_backfills",
            "backfills_http"]  # fmt: skip
LITERAL_DEFAULTS = sorted(name for name, setting in CATALOGUE.items() if setting.default)


def test_every_capability_has_settings_and_every_setting_says_what_it_means() -> None:
    assert {setting.capability for setting in CATALOGUE.values()} == set(Capability)
    for name, setting in CATALOGUE.items():
        assert setting.name == name
        assert setting.meaning, name
        assert not (setting.default and setting.derived), f"{name}: a default is literal or derived"
        assert not (setting.required and (setting.default or setting.derived)), f"{name}: required"


def test_the_catalogue_defaults_are_the_ones_the_loaders_use() -> None:
    assert len(LITERAL_DEFAULTS) > 20  # a floor: the integers, the formats, the cloud
    unset = load_settings(BASE)
    for name in LITERAL_DEFAULTS:
        assert load_settings({**BASE, name: CATALOGUE[name].default}) == unset, name


def test_a_name_missing_from_the_catalogue_cannot_be_read() -> None:
    with pytest.raises(KeyError, match="NOT_A_SETTING"):
        Environment({"NOT_A_SETTING": "x"}).text("NOT_A_SETTING")


def test_without_a_mapping_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORT_MAX_DAYS", " 9 ")
    assert Environment().integer("REPORT_MAX_DAYS", 1, 3650) == 9


@pytest.mark.parametrize(
    ("value", "expected"), [("TRUE", True), ("yes", True), ("on", True), ("0", False), ("No", False)]
)
def test_booleans_take_the_usual_spellings(value: str, expected: bool) -> None:
    assert Environment({"RESOLVE_ON_DEMAND": value}).boolean("RESOLVE_ON_DEMAND", default=False) is expected


def test_a_blank_value_counts_as_unset() -> None:
    env = Environment({"REPORT_PAGE_ROWS": "   ", "RESOLVE_ON_DEMAND": " "})
    assert env.integer("REPORT_PAGE_ROWS", 100, 200_000) == 10_000
    assert env.boolean("RESOLVE_ON_DEMAND", default=True) is True
    assert env.optional("REPORT_PAGE_ROWS") == "10000"


def test_a_malformed_boolean_is_rejected_by_name() -> None:
    with pytest.raises(SettingsError) as raised:
        Environment({"RESOLVE_ON_DEMAND": "maybe"}).boolean("RESOLVE_ON_DEMAND", default=False)
    assert str(raised.value) == "RESOLVE_ON_DEMAND must be true or false, got 'maybe'"


ENVIRONMENT_NAMES = ("environ", "environb", "getenv")


def _names_used_from_os(tree: ast.Module) -> Iterator[str]:
    """`x` of every `os.x` and `from os import x` in the module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            yield node.attr
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            yield from (alias.name for alias in node.names)


def _reads_the_environment(path: Path) -> bool:
    return any(name in ENVIRONMENT_NAMES for name in _names_used_from_os(ast.parse(path.read_text())))


def test_nothing_deployed_reads_the_environment_but_the_environment_module() -> None:
    sources = [path for package in DEPLOYED for path in (ROOT / package).rglob("*.py")]
    assert len(sources) > 40
    readers = [str(path.relative_to(ROOT)) for path in sources if _reads_the_environment(path)]
    assert readers == ["shared/settings/environment.py"]
