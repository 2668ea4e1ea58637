"""Nightly input files: what spreadsheets really export (byte-order marks, trailing commas,
stray cells, fractional or non-finite numbers) is read or refused with the file, line or field
named, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, prepare

from gridshift.adapters.nightly_files import read_jobs, read_sites
from gridshift.optimizer.errors import InvalidInputError

HEADER = "id,gpus,power_kw,duration_minutes,deadline"


def write(tmp_path: Path, name: str, text: str, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def problems(call) -> list[str]:
    with pytest.raises(InvalidInputError) as info:
        call()
    return [str(v) for v in info.value.violations]


def test_byte_order_mark_and_trailing_commas_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, "jobs.csv", f"{HEADER},\nj1,8,5.6,120,2026-06-15T06:00:00Z,\n",
                 bom=True)
    assert read_jobs(path) == [{"id": "j1", "gpus": 8, "power_kw": 5.6,
                                "duration_minutes": 120, "deadline": "2026-06-15T06:00:00Z"}]
    sites = write(tmp_path, "sites.json", '{"sites": [{"id": "a"}], "slot_minutes": 30}',
                  bom=True)
    assert read_sites(sites) == ([{"id": "a"}], 30)


def test_a_row_with_more_cells_than_columns_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "jobs.csv", f"{HEADER}\nj1,8,5.6,120,\nj2,8,5.6,120,,oops\n")
    assert problems(lambda: read_jobs(path)) == [
        f"{path}:3: 1 more cell(s) than the header's 5 columns"]


@pytest.mark.parametrize(("cell", "shown"), [("1.5", "1.5"), ("inf", "'inf'"),
                                             ("nan", "'nan'"), ("eight", "'eight'")])
def test_gpus_that_are_not_whole_numbers_are_named_not_rounded(tmp_path: Path, cell: str,
                                                                shown: str) -> None:
    path = write(tmp_path, "jobs.csv", f"{HEADER}\nj1,{cell},5.6,120,\n")
    request = {"horizon": {"start": "2026-06-15T00:00:00Z", "slots": 8},
               "sites": [{"id": "a", "region": "US-CAL-CISO", "gpu_capacity": 8}],
               "jobs": read_jobs(path)}
    found = problems(lambda: prepare(request))
    assert any(p.startswith("jobs[0].gpus:") and shown in p for p in found), found


@pytest.mark.parametrize("slot", ["abc", "0", "-15", "1.5", "true", "null"])
def test_bad_slot_minutes_in_the_sites_file(tmp_path: Path, slot: str) -> None:
    path = write(tmp_path, "sites.yaml", f"slot_minutes: {slot}\nsites:\n  - {{id: a}}\n")
    [message] = problems(lambda: read_sites(path))
    assert message.startswith(f"{path}: slot_minutes: must be a positive whole number")


def run_nightly(tmp_path: Path, gpus_cell: str, *flags: str) -> subprocess.CompletedProcess:
    """`gridshift nightly` on a one-job CSV (its GPU cell given) and a one-site file, with its
    own data directory."""
    jobs = write(tmp_path, "jobs.csv", f"{HEADER}\nj1,{gpus_cell},5.6,120,\n")
    sites = write(tmp_path, "sites.yaml",
                  "sites:\n  - {id: a, region: US-CAL-CISO, gpu_capacity: 8}\n")
    env = dict(os.environ, GRIDSHIFT_DATA_DIR=str(tmp_path / "data"))
    env.pop("GRIDSHIFT_DB_URL", None)
    return subprocess.run([sys.executable, "-m", "gridshift.cli", "nightly", "--jobs", str(jobs),
                           "--sites", str(sites), *flags], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env, timeout=120)


def test_nightly_cli_refuses_a_non_finite_cell_with_exit_code_2(tmp_path: Path) -> None:
    done = run_nightly(tmp_path, "inf", "--out-dir", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "jobs[0].gpus: must be an integer, got 'inf'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out" / "plan.json").exists()


def test_nightly_cli_refuses_a_date_that_does_not_exist(tmp_path: Path) -> None:
    done = run_nightly(tmp_path, "8", "--date", "2026-02-30")
    assert done.returncode == 2, done.stderr
    assert "--date: not a calendar date (YYYY-MM-DD): '2026-02-30'" in done.stderr

