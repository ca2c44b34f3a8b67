"""The pages' figures come from committed runs (issue 23, design rule 13): every block renders and
equals its run, a changed median fails the check naming the page and the figure, and a cited
run must have come from a clean tree at a commit of this history."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import pages, report
from bench.analysis.results import Run, load_run
from bench.analysis.summary import Row
from bench.reporting import provenance
from bench.reporting.figures import FIGURES, FigureError, render
from servers.process import PROJECT_ROOT
from tests.bench_command import output_of, run_bench

BASELINE = "results/baseline/baseline.json"
PAGE = f"""# A page

<!-- figures: {BASELINE} ladder-table scenario=ladder -->
<!-- /figures -->

<!-- figures: {BASELINE} story -->
<!-- /figures -->
"""


@pytest.fixture(scope="module")
def committed_pages():
    """Every block of the pages rendered from its run, once: rendering re-draws each verdict's
    bootstrap interval (seconds of CPU), and these tests only read the result."""
    return pages.figure_problems(PROJECT_ROOT)


def test_every_block_of_the_pages_renders_and_equals_its_run(committed_pages):
    problems, cited = committed_pages
    assert cited, "the pages cite committed runs"
    assert not problems, "run `python -m bench.pages`:\n" + "\n".join(problems)


def test_every_figure_of_the_registry_is_used_by_a_page(committed_pages):
    _, cited = committed_pages
    used = {block.figure for blocks in cited.values() for block in blocks}
    assert set(FIGURES) <= used, f"figures no page shows: {sorted(set(FIGURES) - used)}"


def test_every_cited_run_passes_the_provenance_rule(committed_pages):
    """Fails for runs saved before the start record existed: they are re-made from a clean tree."""
    _, cited = committed_pages
    problems = pages.run_problems(PROJECT_ROOT, cited)
    assert not problems, "\n".join(problems)


@pytest.fixture
def site(tmp_path) -> Path:
    """A copy of the baseline and a page citing it, rendered."""
    (tmp_path / BASELINE).parent.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / BASELINE, tmp_path / BASELINE)
    (tmp_path / "README.md").write_text(PAGE)
    assert pages.update(tmp_path) == ["README.md"]
    assert pages.figure_problems(tmp_path)[0] == []
    return tmp_path


def _ladder_row(document: dict, strategy: str, requests: int) -> dict:
    return next(
        b
        for b in document["benchmarks"]
        if b["extra_info"].get("scenario") == "ladder"
        and b["extra_info"]["strategy"] == strategy
        and b["extra_info"]["requests"] == requests
    )


def test_a_changed_median_fails_the_check_naming_the_page_and_the_figure(site):
    path = site / BASELINE
    document = json.loads(path.read_text())
    row = _ladder_row(document, "gevent-joinall", 1000)
    stats = row["stats"]
    stats["data"] = [value * 1.5 for value in stats["data"]]
    for name in ("median", "min", "max"):
        stats[name] *= 1.5
    path.write_text(json.dumps(document))
    problems, _ = pages.check(site, check_provenance=False)
    assert any("README.md:3: figure ladder-table" in p and "gevent-joinall" in p for p in problems), problems
    pages.update(site)
    assert pages.check(site, check_provenance=False)[0] == [], "re-rendered, the page matches again"


def test_a_saved_median_that_its_rounds_do_not_give_fails_the_check(site):
    """Editing only pytest-benchmark's summary (what `compare` reads) must not pass unseen."""
    path = site / BASELINE
    document = json.loads(path.read_text())
    _ladder_row(document, "threads", 100)["stats"]["median"] *= 1.5
    path.write_text(json.dumps(document))
    problems, _ = pages.check(site, check_provenance=False)
    assert any("saved median" in p and "threads" in p for p in problems), problems


def test_the_command_names_the_page_block_and_first_differing_line(site, capsys):
    page = site / "README.md"
    page.write_text(page.read_text().replace("| 100 (500 ms) | threads |", "| 100 (500 ms) | thread |"))
    assert pages.main(["--check", "--no-provenance", "--root", str(site)]) == 1
    err = capsys.readouterr().err
    assert "README.md:3: figure ladder-table of results/baseline/baseline.json differs" in err
    assert "'| 100 (500 ms) | thread |" in err


def test_a_block_that_cannot_render_is_a_usage_error(site, capsys):
    (site / "README.md").write_text(f"<!-- figures: {BASELINE} no-such-figure -->\n<!-- /figures -->\n")
    assert pages.main(["--check", "--no-provenance", "--root", str(site)]) == 2
    assert "README.md:1: figure no-such-figure" in capsys.readouterr().err


def test_an_unclosed_block_is_refused(site):
    (site / "README.md").write_text(f"<!-- figures: {BASELINE} story -->\ntext\n")
    with pytest.raises(pages.PagesError, match="not closed"):
        pages.figure_problems(site)


def test_a_marker_in_a_code_fence_is_an_example():
    lines = ["```markdown", "<!-- figures: results/x.json story -->", "<!-- /figures -->", "```"]
    assert pages.blocks_of("page.md", lines) == []


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.invalid")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "code.py").write_text("one\n")
    _git(tmp_path, "add", "code.py")
    _git(tmp_path, "commit", "-qm", "one")
    return tmp_path


def test_a_clean_run_at_an_ancestor_commit_passes(repo):
    (repo / ".gitignore").write_text("results/\n")
    _git(repo, "add", ".gitignore")
    _git(repo, "commit", "-qm", "ignore what runs write")
    start = provenance.tree_state(repo)
    (repo / "results").mkdir()
    (repo / "results" / "run.json").write_text("what a run writes, ignored, does not make a tree dirty\n")
    context = {provenance.KEY: {"start": start, "end": provenance.tree_state(repo)}}
    assert start["dirty"] is False
    assert provenance.cited_run_problems(context, repo) == []
    (repo / "code.py").write_text("two\n")
    _git(repo, "commit", "-qam", "two")
    assert provenance.cited_run_problems(context, repo) == [], "an older commit of the history is fine"
    assert provenance.duration_seconds(context) >= 0


def test_an_untracked_file_makes_a_tree_dirty(repo):
    """An untracked pytest.ini or module changes what a run runs: the tree is not clean."""
    (repo / "pytest.ini").write_text("[pytest]\n")
    assert provenance.tree_state(repo)["dirty"] is True


def test_a_run_on_a_dirty_tree_fails(repo):
    (repo / "code.py").write_text("changed, not committed\n")
    state = provenance.tree_state(repo)
    problems = provenance.cited_run_problems({provenance.KEY: {"start": state, "end": state}}, repo)
    assert problems == ["the tree was dirty at its start", "the tree was dirty at its end"]


def test_a_run_across_a_commit_fails(repo):
    start = provenance.tree_state(repo)
    (repo / "code.py").write_text("two\n")
    _git(repo, "commit", "-qam", "two")
    problems = provenance.cited_run_problems(
        {provenance.KEY: {"start": start, "end": provenance.tree_state(repo)}}, repo
    )
    assert len(problems) == 1 and problems[0].startswith("the commit changed during the run"), problems


def test_a_run_at_a_commit_outside_the_history_fails(repo):
    _git(repo, "checkout", "-qb", "side")
    (repo / "code.py").write_text("side\n")
    _git(repo, "commit", "-qam", "side")
    state = provenance.tree_state(repo)
    _git(repo, "checkout", "-q", "-")
    problems = provenance.cited_run_problems({provenance.KEY: {"start": state, "end": state}}, repo)
    assert problems == [f"its commit {state['commit'][:10]} is not an ancestor of HEAD"]


def test_a_run_at_a_commit_unknown_here_fails(repo):
    state = provenance.tree_state(repo) | {"commit": "0123456789" * 4}
    problems = provenance.cited_run_problems({provenance.KEY: {"start": state, "end": state}}, repo)
    assert problems == ["its commit 0123456789 is not in this repository (a shallow clone?)"]


def test_a_run_without_the_start_record_fails(repo):
    assert provenance.cited_run_problems({}, repo)[0].startswith("no provenance record")
    end_only = {provenance.KEY: {"end": provenance.tree_state(repo)}}
    assert "no commit recorded at its start" in provenance.cited_run_problems(end_only, repo)


def test_a_saved_run_records_the_tree_at_its_start_and_its_end(tmp_path):
    done = run_bench(
        tmp_path / "storage",
        "--bench-scenario=quick",
        "--bench-strategies=threads",
        "--bench-requests=3",
        "--bench-delay-ms=10",
        "--bench-rounds=1",
        "--bench-processes=1",
        f"--benchmark-json={tmp_path}/run.json",
    )
    assert done.returncode == 0, output_of(done)
    record = json.loads((tmp_path / "run.json").read_text())["coroutine_bench"][provenance.KEY]
    head = _git(PROJECT_ROOT, "rev-parse", "HEAD").strip()
    assert record["start"]["commit"] == record["end"]["commit"] == head, record
    assert isinstance(record["start"]["dirty"], bool) and isinstance(record["end"]["dirty"], bool)
    assert record["start"]["at"] < record["end"]["at"]


def _run_of(rows: list[dict]) -> Run:
    """A run of bare rows, enough for the renderers that read extra_info alone."""
    return Run(Path("results/runs/made-up.json"), [Row("quick", [0.2], info) for info in rows])


def test_the_harness_overhead_is_ranged_by_round_size_and_skips_rows_without_it():
    run = _run_of(
        [
            {"requests": 10, "harness_overhead_ms": 0.4},
            {"requests": 10, "harness_overhead_ms": 0.61},
            {"requests": 1000, "harness_overhead_ms": 0.9},
            {"requests": 1000, "harness_overhead_ms": None},
        ]
    )
    assert render(run, "harness-overhead", {}) == (
        "- 10 requests a round: 0.40-0.61 ms over 2 rows\n- 1,000 requests a round: 0.90 ms over 1 row"
    )
    with pytest.raises(FigureError, match="records harness_overhead_ms"):
        render(_run_of([{"requests": 10, "harness_overhead_ms": None}]), "harness-overhead", {})


def _io_row(strategy: str, client: str, cpu_ms: float, valid: bool = True) -> dict:
    return {
        "strategy": strategy,
        "client": client,
        "kind": "io",
        "valid": valid,
        "cpu_per_request_ms": cpu_ms,
        "peak_rss_per_inflight_bytes": 8192,
    }


def test_the_client_cost_splits_each_row_against_the_same_model_with_the_raw_client():
    run = _run_of([_io_row("threads", "raw", 0.1), _io_row("threads", "pycurl", 0.35)])
    table = render(run, "client-cost", {}).splitlines()
    assert (
        table[3]
        == "| threads | pycurl | 0.200 | 0.350 ms | 0.100 ms | +0.250 ms | 8.0 KiB | 8.0 KiB | +0 B |"
    )
    assert len(table) == 4, table


def test_the_client_cost_needs_a_valid_raw_floor():
    run = _run_of([_io_row("threads", "raw", 0.1, valid=False), _io_row("threads", "pycurl", 0.35)])
    with pytest.raises(FigureError, match="no valid raw row"):
        render(run, "client-cost", {})


def test_in_flight_shows_the_clients_count_beside_the_targets_and_says_when_there_is_no_referee():
    run = _run_of(
        [
            {
                "strategy": "asyncio-gather",
                "client": "aiohttp",
                "valid": True,
                "requests": 5000,
                "client_max_in_flight": 5000,
                "server_max_in_flight": 2221,
                "server_requests_by_round": [5000, 5000, 5000],
            },
            {
                "strategy": "threads",
                "client": "own",
                "valid": False,
                "requests": 20,
                "client_max_in_flight": 20,
                "server_max_in_flight": None,
                "fetch": "examples.x:make_fetch",
            },
        ]
    )
    assert render(run, "in-flight", {}).splitlines()[2:] == [
        "| asyncio-gather[aiohttp] | 5,000 | 5,000 | 2,221 | 5,000 in each of 3 rounds |",
        "| threads[own], INVALID | 20 | 20 | no referee | no referee |",
    ]


def test_a_committed_report_its_runs_no_longer_give_fails_the_check(site, monkeypatch):
    """The report once kept a closing summary of a former reading (3.3x less CPU where its run
    gives 3.5x): its text is re-built from its runs by the check."""
    monkeypatch.setattr(report, "COMMITTED_RUNS", (BASELINE,))
    fresh = report.markdown_of([load_run(site / BASELINE)], [("Side by side", "side_by_side.png")])
    assert "less CPU" in fresh
    committed = site / "results" / "report" / "report.md"
    committed.parent.mkdir(parents=True)
    committed.write_text(fresh.replace("less CPU", "more CPU", 1))
    [problem] = pages.report_problems(site)
    assert problem.startswith("results/report/report.md:") and "committed: " in problem, problem
    assert "more CPU" in problem and "python -m bench.report results/baseline/baseline.json" in problem
