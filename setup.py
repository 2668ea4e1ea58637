"""Packaging detail that pyproject.toml cannot express: the repository's top-level folders
optimizer/, forecasting/ and adapters/ install as gridshift.optimizer, gridshift.forecasting and
gridshift.adapters, so that every installed import name starts with ``gridshift`` and nothing
collides with other packages (PyPI has an ``adapters`` and an ``optimizer``). Everything else
is in pyproject.toml."""

from setuptools import find_packages, setup

#: Import name -> the repository folder it is installed from.
MAPPED_FOLDERS = {
    "gridshift.optimizer": "optimizer",
    "gridshift.forecasting": "forecasting",
    "gridshift.adapters": "adapters",
}


def packages() -> list[str]:
    """gridshift and its subpackages, then each mapped folder and its subpackages."""
    found = find_packages(include=["gridshift", "gridshift.*"])
    for name, folder in MAPPED_FOLDERS.items():
        found += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]
    return found


setup(packages=packages(), package_dir={"gridshift": "gridshift", **MAPPED_FOLDERS})
