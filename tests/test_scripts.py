"""scripts/bootstrap.sh and pyproject.toml: what a new user's first commands depend on."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fake_checkout(tmp_path: Path, present: set[str]) -> tuple[Path, dict[str, str], Path]:
    """A copy of bootstrap.sh, pyproject.toml and constraints.txt with a fake .venv, apt-get and PATH.

    The fake ``.venv/bin/python`` and ``apt-get`` append their arguments to ``calls.log``; ``present``
    names the tools ``command -v`` finds (the rest of PATH holds only what the script itself runs).
    """
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", checkout / "scripts" / "bootstrap.sh")
    for name in ("pyproject.toml", "constraints.txt", "tests/grafana_schema/package-lock.json"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, checkout / name)
    log = tmp_path / "calls.log"
    log.touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def stub(path: Path, name: str) -> None:
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        path.chmod(0o755)

    venv_bin = checkout / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    stub(venv_bin / "python", "python")
    stub(venv_bin / "coldchain", "coldchain")
    stub(bin_dir / "apt-get", "apt-get")
    for tool in present:
        stub(bin_dir / tool, tool)
    os.symlink("/usr/bin/python3", bin_dir / "python3")  # the system's (a venv's python3 is no venv outside it)
    for tool in ("sha256sum", "cat", "cut", "dirname"):
        os.symlink(shutil.which(tool) or tool, bin_dir / tool)
    return checkout, {"PATH": str(bin_dir), "HOME": str(tmp_path)}, log


def _bootstrap(checkout: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["/bin/bash", str(checkout / "scripts" / "bootstrap.sh"), *args], env=env, check=True, timeout=60)


def test_bootstrap_skips_pip_when_already_installed_at_this_version(tmp_path: Path) -> None:
    """pip runs at the first bootstrap and after pyproject.toml or constraints.txt change, not at every start."""
    checkout, env, log = _fake_checkout(tmp_path, set())
    _bootstrap(checkout, env, "--runtime")
    first = log.read_text().splitlines()
    assert not [line for line in first if line.startswith("apt-get")], first
    assert any("pip install" in line and "constraints.txt" in line for line in first), first
    _bootstrap(checkout, env, "--runtime")
    assert log.read_text().splitlines() == first  # the second start: no pip at all
    with (checkout / "constraints.txt").open("a") as constraints:
        constraints.write("\n# changed\n")
    _bootstrap(checkout, env, "--runtime")
    assert len(log.read_text().splitlines()) > len(first)


def test_bootstrap_installs_the_clients_the_readme_uses(tmp_path: Path) -> None:
    """Without mosquitto_pub (mosquitto-clients) or curl, bootstrap installs them: the README's commands use both."""
    servers = {"mosquitto", "influxd", "chromium", "chromedriver", "pdftoppm", "npm"}
    checkout, env, log = _fake_checkout(tmp_path, servers)
    _bootstrap(checkout, env)
    installs = [line for line in log.read_text().splitlines() if line.startswith("apt-get install")]
    assert len(installs) == 1 and {"mosquitto-clients", "curl"} <= set(installs[0].split()), installs


def test_license_is_an_spdx_string_the_build_backend_supports() -> None:
    """project.license is an SPDX expression (the table form is deprecated) and setuptools is new enough for it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "Apache-2.0"
    (setuptools,) = [req for req in pyproject["build-system"]["requires"] if req.startswith("setuptools")]
    floor = tuple(int(part) for part in setuptools.removeprefix("setuptools>=").split("."))
    assert floor >= (77,), setuptools  # PEP 639 license expressions arrived in setuptools 77
