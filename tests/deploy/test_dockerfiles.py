"""The Dockerfiles: hadolint-clean, every file they copy is in the repository and in the build
context, and each image target is what the compose file and the README promise."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.deploy.dockerfiles import DockerIgnore, Stage, stages
from tests.deploy.tools import DOCKERFILES, ROOT, tool

IGNORE = DockerIgnore(ROOT / ".dockerignore")


def targets() -> list[tuple[Path, Stage, list[Stage]]]:
    """(Dockerfile, target stage, the stage and its ancestors): the stages with an ENTRYPOINT."""
    out = []
    for path in DOCKERFILES:
        by_name = {s.name: s for s in stages(path)}
        for stage in by_name.values():
            if stage.args("ENTRYPOINT"):
                chain, s = [], stage
                while s is not None:
                    chain.append(s)
                    s = by_name.get(s.base)
                out.append((path, stage, chain))
    return out


TARGETS = targets()
TARGET_IDS = [f"{p.name}:{s.name}" for p, s, _ in TARGETS]


def hadolint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_there_are_service_and_training_targets() -> None:
    assert set(TARGET_IDS) == {"Dockerfile:runtime", "Dockerfile.cuda:service", "Dockerfile.cuda:train"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_hadolint_passes(path: Path) -> None:
    out = hadolint(str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_config_still_reports_problems(tmp_path: Path) -> None:
    """The configuration lints: an unpinned base and an unpinned pip install are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    out = hadolint(str(bad))
    assert out.returncode != 0
    assert "DL3007" in out.stdout and "DL3013" in out.stdout


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_copied_paths_exist_and_are_in_the_build_context(path: Path) -> None:
    for stage in stages(path):
        for c in stage.copies(path):
            if c.from_stage is not None:
                continue
            for src in c.sources:
                full = ROOT / src
                assert full.exists(), f"{path.name}:{c.line} copies {src}, which does not exist"
                assert not IGNORE.excluded(src), f"{path.name}:{c.line} copies {src}, but .dockerignore leaves it out"
                files = [f for f in full.rglob("*.py") if "__pycache__" not in f.parts] if full.is_dir() else []
                left_out = [f for f in files if IGNORE.excluded(str(f.relative_to(ROOT)))]
                assert not left_out, f".dockerignore leaves out sources under {src}: {left_out[:5]}"


def test_package_data_reaches_the_build_context() -> None:
    """The static page and the shipped checkpoint are package data: they must not be ignored."""
    data = [f for d in ("service/static", "service/assets") for f in (ROOT / d).rglob("*") if f.is_file()]
    assert not [f for f in data if IGNORE.excluded(str(f.relative_to(ROOT)))]


@pytest.mark.parametrize("path", ["data/ped2/train/001.tif", "runs/ped2/last.safetensors", ".venv/bin/python",
                                  ".git/HEAD", "model/__pycache__/x.cpython-311.pyc", ".pytest_cache/v/x",
                                  "tests/model/test_ocrgan.py", "benchmarks/model_speed.py", ".env",
                                  "deploy/ocrgan.env"])
def test_dockerignore_keeps_out(path: str) -> None:
    assert IGNORE.excluded(path)


def test_torch_pin_matches_pyproject() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.replace(" ", "").startswith("torch=="))
    for path in DOCKERFILES:
        for stage in stages(path):
            for arg in stage.args("ARG"):
                if arg.startswith("TORCH_VERSION="):
                    assert f"torch=={arg.split('=', 1)[1]}" == pin.replace(" ", ""), f"{path.name}: {arg} vs {pin}"


def test_cpu_image_installs_the_cpu_torch_build() -> None:
    build = stages(ROOT / "docker" / "Dockerfile")
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in [a for s in build for a in s.args("ARG")]
    runs = " ".join(r for s in build for r in s.args("RUN"))
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in runs


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_base_images_are_pinned(path: Path) -> None:
    names = {s.name for s in stages(path)}
    for s in stages(path):
        if s.base not in names:
            assert re.fullmatch(r"[\w./-]+:[\w][\w.-]*", s.base) and not s.base.endswith(":latest"), s.base


@pytest.mark.parametrize(("path", "stage", "chain"), TARGETS, ids=TARGET_IDS)
def test_targets_run_ocrgan_as_an_unprivileged_user(path: Path, stage: Stage, chain: list[Stage]) -> None:
    user = next(s.args("USER")[-1] for s in chain if s.args("USER"))
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user
    assert stage.args("ENTRYPOINT")[-1] == '["ocrgan"]'


def _env(chain: list[Stage]) -> dict[str, str]:
    env: dict[str, str] = {}
    for s in reversed(chain):
        for line in s.args("ENV"):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


@pytest.mark.parametrize(("path", "stage", "chain"), [t for t in TARGETS if t[1].name != "train"],
                         ids=[i for i in TARGET_IDS if not i.endswith(":train")])
def test_service_targets_listen_on_all_interfaces_and_check_their_health(path: Path, stage: Stage,
                                                                         chain: list[Stage]) -> None:
    env = _env(chain)
    assert env["OCRGAN_HOST"] == "0.0.0.0"  # the service's default, 127.0.0.1, is unreachable from outside
    assert stage.args("EXPOSE") == [env["OCRGAN_PORT"]]
    assert stage.args("CMD")[-1] == '["serve"]'
    health = stage.args("HEALTHCHECK")[-1]
    probe = next(c.dest for c in stage.copies(path) if c.sources == ["docker/healthcheck.py"])
    assert f'CMD ["python", "{probe}", "/healthz"]' in health
