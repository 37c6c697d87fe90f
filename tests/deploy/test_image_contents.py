"""What each image installs, short of building it: the build context the Dockerfile's COPY lines
take (through .dockerignore) is packaged by the real pip, and the result is imported the way the
image's own smoke test (`RUN python -c "import ..."`) imports it, with nothing else of this
repository on the path."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.dockerfiles import Stage, stages
from tests.deploy.test_dockerfiles import IGNORE, TARGET_IDS, TARGETS
from tests.deploy.tools import ROOT

_wheels: dict[tuple[str, ...], Path] = {}


def build_chain(path: Path, stage: Stage) -> list[Stage]:
    """The stage that fills /opt/venv for `stage`, then its ancestors."""
    by_name = {s.name: s for s in stages(path)}
    venv_from = next(c.from_stage for c in stage.copies(path) if c.dest == "/opt/venv")
    chain, s = [], by_name[venv_from]
    while s is not None:
        chain.append(s)
        s = by_name.get(s.base)
    return chain


def staged_sources(path: Path, chain: list[Stage]) -> list[str]:
    return sorted(src for s in chain for c in s.copies(path) if c.from_stage is None for src in c.sources)


def wheel_for(sources: list[str], tmp: Path) -> Path:
    """Copy the sources into a fresh context honouring .dockerignore, and let pip build the wheel."""
    key = tuple(sources)
    if key not in _wheels:
        ctx = tmp / f"ctx{len(_wheels)}"
        for src in sources:
            full = ROOT / src
            files = [full] if full.is_file() else [f for f in full.rglob("*") if f.is_file()]
            for f in files:
                rel = str(f.relative_to(ROOT))
                if not IGNORE.excluded(rel):
                    (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, ctx / rel)
        out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                              "-w", str(tmp / f"wheels{len(_wheels)}"), str(ctx)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        _wheels[key] = next((tmp / f"wheels{len(_wheels)}").glob("*.whl"))
    return _wheels[key]


def run_isolated(site: Path, code: str) -> subprocess.CompletedProcess:
    """Python with only the unpacked wheel and the installed third-party packages: -S skips the
    .pth hooks of the editable install, and the working directory is not the repository."""
    third_party = [p for p in sys.path if p.endswith("site-packages")]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OCRGAN_", "PYTHON"))},
           "PYTHONPATH": os.pathsep.join([str(site), *third_party])}
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=site, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.mark.parametrize(("path", "stage", "chain"), TARGETS, ids=TARGET_IDS)
def test_image_packages_import_and_offer_their_commands(path: Path, stage: Stage, chain: list[Stage],
                                                         tmp: Path) -> None:
    build = build_chain(path, stage)
    wheel = wheel_for(staged_sources(path, build), tmp)
    site = tmp / f"site-{path.name}-{stage.name}"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
        names = z.namelist()
    is_service = stage.name != "train"
    top = {n.split("/")[0] for n in names}
    assert ("service" in top) is is_service and ("training" in top) is not is_service, sorted(top)
    assert "model" in top and "ocrgan_cli.py" in top

    smoke = [m.group(1) for s in chain for r in s.args("RUN") for m in [re.search(r'python -c "(import [^"]+)"', r)]
             if m]
    assert smoke, f"{path.name}:{stage.name} has no import smoke test"
    for code in smoke:
        out = run_isolated(site, f"{code}; import model; assert model.__file__.startswith({str(site)!r})")
        assert out.returncode == 0, out.stderr[-3000:]

    out = run_isolated(site, "import ocrgan_cli; ocrgan_cli.main(['--help'])")
    commands = set(re.findall(r"\b(serve|score|demo|train|eval|calibrate)\b", out.stdout))
    assert ("serve" in commands) is is_service and ("train" in commands) is not is_service, out.stdout + out.stderr



def test_service_images_carry_the_web_page(tmp: Path) -> None:
    """The page at / is package data of the service: it must reach site-packages in the image."""
    static = {f"service/static/{f.name}" for f in (ROOT / "service" / "static").iterdir() if f.is_file()}
    assert static
    for path, stage, _ in TARGETS:
        if stage.name == "train":
            continue
        with zipfile.ZipFile(wheel_for(staged_sources(path, build_chain(path, stage)), tmp)) as z:
            assert static <= set(z.namelist()), f"{path.name}: {static - set(z.namelist())}"


def test_service_images_carry_the_default_checkpoint(tmp: Path) -> None:
    """With OCRGAN_CHECKPOINT unset, the service loads the checkpoint shipped as package data."""
    from service.settings import DEFAULT_CHECKPOINT

    assert DEFAULT_CHECKPOINT.is_file(), "service/assets/default.safetensors is missing"
    default = DEFAULT_CHECKPOINT.relative_to(ROOT).as_posix()
    for path, stage, _ in TARGETS:
        if stage.name == "train":
            continue
        with zipfile.ZipFile(wheel_for(staged_sources(path, build_chain(path, stage)), tmp)) as z:
            assert default in z.namelist(), f"{path.name}: {default} is not installed"
