"""The README's example request stays valid and plans correctly."""

from __future__ import annotations

import json
import re

from conftest import PROJECT_ROOT, prepare, solve_checked


def readme_request() -> dict:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)\n```", text, re.S)
    assert block, "README has no ```json request example"
    return json.loads(block.group(1))


def test_readme_example_plans_and_beats_the_baseline() -> None:
    problem = prepare(readme_request())
    result = solve_checked(problem)
    assert result.status == "OPTIMAL"
    assert len(result.plan.placements) == problem.n_jobs
    # eval-sweep is pinned to va-east by data residency.
    eval_sweep = problem.job_ids.index("eval-sweep")
    assert problem.site_ids[result.plan.placements[eval_sweep].site] == "va-east"
    assert result.figures.totals.emissions_kg <= result.baseline_figures.totals.emissions_kg


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_links_to_its_own_sections_resolve() -> None:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    anchors = {_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert len(links) >= 13, "the README's contents line links every section"
    assert sorted({link for link in links if link not in anchors}) == []
