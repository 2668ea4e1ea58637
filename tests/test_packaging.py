"""The wheel installs only names under ``gridshift``: installed beside a package called
``adapters`` (the import name of a widely used PyPI library for parameter-efficient
fine-tuning; ``optimizer`` exists there too), both keep working.

The wheel is built here without network (``--no-build-isolation``), installed without its
dependencies into a fresh virtual environment that already holds an ``adapters`` package, and
that environment borrows this one's third-party packages (numpy, OR-Tools, ...) through a
``.pth`` line, so nothing is downloaded."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, job, small_request

OTHER_ADAPTERS = {
    "pyproject.toml": textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "adapters"
        version = "1.1.0"

        [tool.setuptools]
        packages = ["adapters", "optimizer"]
    """),
    "adapters/__init__.py": ('WHO = "peft-adapters"\n\n'
                             'def init(model):\n    return f"{model}+lora"\n'),
    "optimizer/__init__.py": 'WHO = "another optimizer"\n',
}


def _wheel(source: Path, out: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(out), str(source)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"cannot build a wheel of {source}: {done.stderr[-2000:]}")
    return next(out.glob("*.whl"))


@pytest.fixture(scope="module")
def gridshift_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wheel(PROJECT_ROOT, tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_only_gridshift(gridshift_wheel: Path) -> None:
    names = zipfile.ZipFile(gridshift_wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"gridshift", gridshift_wheel.name.split("-py3")[0] + ".dist-info"}, top
    for package in ("optimizer", "forecasting", "adapters"):
        assert f"gridshift/{package}/__init__.py" in names
    assert "gridshift/forecasting/data/typical_profiles.csv" in names
    assert "gridshift/adapters/store/migrations/script.py.mako" in names


def test_installed_beside_an_adapters_package_both_work(gridshift_wheel: Path,
                                                        tmp_path: Path) -> None:
    other_src = tmp_path / "other"
    for relative, text in OTHER_ADAPTERS.items():
        (other_src / relative).parent.mkdir(parents=True, exist_ok=True)
        (other_src / relative).write_text(text, encoding="utf-8")
    other_wheel = _wheel(other_src, tmp_path / "other-wheel")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    # Third-party dependencies come from this environment (after the fresh one's own).
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for wheel in (other_wheel, gridshift_wheel):
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                        "--no-deps", "--no-index", "-q", str(wheel)], check=True, timeout=300,
                       capture_output=True)
    probe = textwrap.dedent("""
        import adapters, optimizer
        assert adapters.WHO == "peft-adapters" and adapters.init("m") == "m+lora"
        assert optimizer.WHO == "another optimizer"
        import gridshift.adapters.codec, gridshift.optimizer.solve, gridshift.forecasting.profiles
        assert gridshift.adapters.__file__.startswith(SITE), gridshift.adapters.__file__
        print("both")
    """).replace("SITE", repr(str(site)))
    done = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "both", done.stderr[-3000:]
    request = small_request(jobs=[job("a", gpus=4, duration_minutes=120), job("b")])
    (tmp_path / "request.json").write_text(json.dumps(request))
    planned = subprocess.run([str(venv / "bin" / "gridshift"), "plan", "request.json", "-q",
                              "--no-store"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=180, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert {a["job_id"] for a in json.loads(planned.stdout)["assignments"]} == {"a", "b"}
