"""The docs stay true to the code (issue 19, item 14): the options table against the parser,
the strategies, clients and scenarios against their registries, the layout against the files,
the README's links against the repository."""

import re
from pathlib import Path

import pytest

from bench.clients import CLIENTS, DEFAULT_CLIENT
from bench.options import BOUNDED, add_options
from bench.scenarios import SCENARIOS
from bench.strategies import STRATEGIES
from servers.process import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"


class RecordingParser:
    """Stands in for pytest's parser: add_options() only asks it for a group and adds to it."""

    def __init__(self) -> None:
        self.options: dict[str, dict] = {}

    def getgroup(self, name, description=""):
        return self

    def addoption(self, name, **attrs) -> None:
        self.options[name] = attrs


def registered_options() -> dict[str, dict]:
    parser = RecordingParser()
    add_options(parser)
    return parser.options


def table_rows(page: Path, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with ``header``."""
    lines = page.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def first_code(cell: str) -> str:
    return re.match(r"`([^`]+)`", cell).group(1)


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented_options() -> dict[str, tuple[str | None, str, str]]:
    """option -> (metavar, default, meaning), as the options page shows them."""
    documented = {}
    for option_cell, default, meaning in table_rows(DOCS / "reference/options.md", "| option |"):
        name, _, metavar = first_code(option_cell).partition(" ")
        documented[name] = (metavar or None, default, meaning)
    return documented


def as_documented(name: str, attrs: dict) -> str:
    """How the options page writes an option's default, computed from the parser's."""
    default = attrs.get("default")
    if attrs.get("action") == "store_true":
        return "off"
    if name == "--bench-client" and default is None:  # None: each strategy's own client
        return "per strategy: " + ", ".join(f"`{client}` ({api})" for api, client in DEFAULT_CLIENT.items())
    if name == "--bench-server-url" and default is None:
        return "none: start one on 127.0.0.1"
    if name == "--bench-db-dsn" and default is None:
        return "none: start a throwaway cluster"
    if name == "--bench-fetch" and default is None:
        return "none: an HTTP client"
    if isinstance(default, tuple):
        joined = f"`{','.join(default)}`"
        return f"all {len(STRATEGIES)}: {joined}" if default == tuple(STRATEGIES) else joined
    if isinstance(default, float):
        return f"`{default:g}`"
    return f"`{default}`"


def test_the_options_table_lists_every_option_of_the_parser_and_no_other():
    assert sorted(documented_options()) == sorted(registered_options())


@pytest.mark.parametrize("name", sorted(registered_options()))
def test_an_options_metavar_and_default_are_the_parsers(name):
    attrs = registered_options()[name]
    metavar, default, _ = documented_options()[name]
    assert metavar == attrs.get("metavar")
    assert default == as_documented(name, attrs)


def test_the_bounded_strategies_named_for_concurrency_are_the_pools():
    *_, meaning = documented_options()["--bench-concurrency"]
    sized = [span for span in code_spans(meaning.split(";")[0]) if span in STRATEGIES]
    assert sized == list(BOUNDED)


def test_every_registered_strategy_client_and_scenario_has_its_row():
    page = DOCS / "reference/models-and-clients.md"
    assert [first_code(row[0]) for row in table_rows(page, "| strategy |")] == list(STRATEGIES)
    assert [first_code(row[0]) for row in table_rows(page, "| client |")] == list(CLIENTS)
    scenarios = [first_code(row[0]) for row in table_rows(DOCS / "reference/scenarios.md", "| scenario |")]
    assert scenarios == list(SCENARIOS)


def test_the_layout_names_every_module():
    """Strategies and clients are covered by their registries' rows; every other module of
    bench/ and servers/, and every conftest.py, is named on the layout page."""
    layout = (DOCS / "develop/layout.md").read_text()
    registries = {PROJECT_ROOT / "bench/strategies", PROJECT_ROOT / "bench/clients"}
    modules = [
        path
        for folder in ("bench", "servers")
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        if path.name != "__init__.py" and path.parent not in registries
    ]
    unnamed = [str(path.relative_to(PROJECT_ROOT)) for path in modules if path.name not in layout]
    assert not unnamed, f"modules missing from docs/develop/layout.md: {unnamed}"
    for conftest in ("conftest.py", "bench/conftest.py", "tests/conftest.py"):
        assert re.search(rf"(^|\s){re.escape(conftest)}\s", layout, re.M), conftest


def test_the_readmes_links_into_the_repository_exist():
    """The site's own links are checked by mkdocs build --strict; the README is not in it."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [target for target in targets if "://" not in target]
    assert local, "the README links into docs/"
    missing = [target for target in local if not (PROJECT_ROOT / target).exists()]
    assert not missing, f"README links to missing files: {missing}"
