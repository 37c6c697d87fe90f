"""docker-compose.yml and the GPU override: valid for Docker Compose, every file they name exists,
and the pieces agree with each other (ports, healthchecks, mounts, settings of the service)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.compose import bind_mounts, resolved, run_config
from tests.deploy.dockerfiles import instructions
from tests.deploy.tools import COMPOSE, COMPOSE_GPU, DEPLOY, ROOT


@pytest.fixture(scope="module")
def stack() -> dict:
    return resolved(COMPOSE)


@pytest.fixture(scope="module")
def gpu_stack() -> dict:
    return resolved(COMPOSE, COMPOSE_GPU)


@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, COMPOSE_GPU)], ids=["cpu", "gpu"])
def test_compose_files_validate(files: tuple[Path, ...]) -> None:
    out = run_config(*files, quiet=True)
    assert out.returncode == 0, out.stderr


def test_a_broken_compose_file_is_refused(tmp_path: Path) -> None:
    """The validator really validates: a misspelt key fails it."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("healthcheck:", "healthchek:", 1))
    out = run_config(broken, quiet=True)
    assert out.returncode != 0
    assert "healthchek" in out.stderr


@pytest.mark.parametrize("which", ["cpu", "gpu"])
def test_every_referenced_file_exists(which: str, stack: dict, gpu_stack: dict) -> None:
    """Build files and bind-mount sources (a missing env file already fails `config`)."""
    config = stack if which == "cpu" else gpu_stack
    missing = []
    for name, svc in config["services"].items():
        build = svc.get("build")
        if build:
            context = Path(build["context"])
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                missing.append(f"{name}: dockerfile {build.get('dockerfile')}")
        for source, _ in bind_mounts(svc):
            if not Path(source).exists():
                missing.append(f"{name}: bind mount {source}")
    assert not missing, missing


def test_images_are_pinned(stack: dict, gpu_stack: dict) -> None:
    """No `latest` and no bare names: a pull next month must give the same release."""
    for config in (stack, gpu_stack):
        for name, svc in config["services"].items():
            image = svc["image"]
            assert re.search(r":[\w][\w.-]*$", image), f"{name}: {image} has no tag"
            assert not image.endswith(":latest"), f"{name}: {image}"


def test_start_up_order(stack: dict) -> None:
    s = stack["services"]
    assert s["ocrgan"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert s["demo-register"]["depends_on"]["ocrgan"]["condition"] == "service_healthy"
    assert s["demo-publisher"]["depends_on"]["demo-register"]["condition"] == "service_completed_successfully"
    for name, svc in s.items():
        for dep, cond in svc.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in s[dep], f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"


def test_service_uses_redis_and_restarts(stack: dict) -> None:
    svc = stack["services"]["ocrgan"]
    assert svc["environment"]["OCRGAN_REDIS_URL"] == "redis://redis:6379/0"
    assert svc["restart"] == "unless-stopped"
    assert any(target == "/checkpoints" for _, target in bind_mounts(svc))
    redis = stack["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(str(v).split(":")[1] == "/data" for v in redis["volumes"]), redis["volumes"]


def test_healthcheck_runs_the_probe_the_image_installs(stack: dict) -> None:
    dockerfile = ROOT / stack["services"]["ocrgan"]["build"]["dockerfile"]
    copied = {rest.split()[-1] for _, word, rest in instructions(dockerfile) if word == "COPY"}
    test = stack["services"]["ocrgan"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"] and test[2] in copied, test
    assert test[3] == "/readyz"


def test_service_port_matches_scrape_config_and_published_port(stack: dict) -> None:
    svc = stack["services"]["ocrgan"]
    port = int(svc["environment"]["OCRGAN_PORT"])
    assert any(str(p).split(":")[-1].split("/")[0] == str(port) for p in svc["ports"]), svc["ports"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    sd = next(c for c in scrape if c["job_name"] == "ocrgan")["dns_sd_configs"][0]
    assert sd["names"] == ["ocrgan"] and sd["port"] == port


def test_ports_are_published_on_loopback_by_default(stack: dict) -> None:
    """With no API key in the example env file, nothing is reachable from other hosts by default."""
    for name, svc in stack["services"].items():
        for p in svc.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), f"{name}: {p}"


def test_prometheus_and_grafana_mounts_match_their_configs(stack: dict) -> None:
    prom = dict((t, Path(s)) for s, t in bind_mounts(stack["services"]["prometheus"]))
    config_dir = prom["/etc/prometheus"]
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        assert (config_dir / rule_file).is_file(), rule_file

    grafana = stack["services"]["grafana"]
    mounts = dict((t, Path(s)) for s, t in bind_mounts(grafana))
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasources[0]["url"] == "http://prometheus:9090" and "prometheus" in stack["services"]
    provider = yaml.safe_load((provisioning / "dashboards" / "ocrgan.yml").read_text())["providers"][0]
    dashboards_dir = mounts[provider["options"]["path"]]
    assert list(dashboards_dir.glob("*.json")), dashboards_dir
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards_dir / Path(home).relative_to(provider["options"]["path"])).is_file()


def test_gpu_override_reserves_a_gpu_and_builds_the_cuda_image(gpu_stack: dict) -> None:
    svc = gpu_stack["services"]["ocrgan"]
    assert svc["build"]["dockerfile"] == "docker/Dockerfile.cuda" and svc["build"]["target"] == "service"
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert svc["environment"]["OCRGAN_DEVICE"] == "cuda"
    stages = [rest.split()[-1] for _, word, rest in instructions(ROOT / svc["build"]["dockerfile"]) if word == "FROM"]
    assert "service" in stages and "train" in stages


def _settings_env(path: Path) -> dict[str, str]:
    """OCRGAN_* assignments of an env file, commented-out examples included."""
    env = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^#?\s*(OCRGAN_[A-Z0-9_]+)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2)
    return env


def test_env_example_and_compose_set_only_real_settings(stack: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings refuses unknown keys, so a typo in the env file would stop the container at start."""
    from service.settings import Settings

    env = _settings_env(DEPLOY / "ocrgan.env.example")
    assert "OCRGAN_API_KEY" in env
    env.update({k: str(v) for k, v in stack["services"]["ocrgan"]["environment"].items() if k.startswith("OCRGAN_")})
    for k in [k for k in os.environ if k.startswith("OCRGAN_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings(_env_file=None)
    assert s.redis_url == "redis://redis:6379/0" and s.host == "0.0.0.0" and s.port == 8000
