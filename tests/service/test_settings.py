"""Settings: environment and .env, typos refused, sane defaults."""

from __future__ import annotations

import pytest

from service.settings import DEFAULT_CHECKPOINT, Backoff, Settings


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.checkpoint == DEFAULT_CHECKPOINT and DEFAULT_CHECKPOINT.name == "default.safetensors"
    assert s.redis_url is None and s.api_key is None
    assert s.allowed_schemes == ["rtsp", "rtsps", "http", "https"]
    assert not s.allow_file_sources and not s.allow_link_local and not s.allow_loopback


def test_environment_and_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OCRGAN_MAX_BATCH=3\nOCRGAN_API_KEY=from-file\nUNRELATED=1\n")
    monkeypatch.setenv("OCRGAN_API_KEY", "from-env")
    monkeypatch.setenv("OCRGAN_ALLOWED_SCHEMES", '["RTSP"]')
    s = Settings()
    assert s.max_batch == 3 and s.api_key == "from-env" and s.allowed_schemes == ["rtsp"]


def test_typos_fail_loudly(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OCRGAN_MAX_BACTH=3\n")
    with pytest.raises(ValueError, match="OCRGAN_MAX_BACTH"):
        Settings()
    with pytest.raises(ValueError, match="max_bacth"):
        Settings(_env_file=None, max_bacth=3)


def test_invalid_values(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError):
        Settings(max_batch=0)
    with pytest.raises(ValueError, match="reconnect_cap"):
        Settings(reconnect_base_seconds=5, reconnect_cap_seconds=1)
    with pytest.raises(ValueError):
        Settings(device="tpu")


def test_empty_values_mean_unset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OCRGAN_API_KEY=\nOCRGAN_REDIS_URL=\n")
    s = Settings()
    assert s.api_key is None and s.redis_url is None


COMPOSE_DOTENV = ("COMPOSE_PROJECT_NAME=ocrgan\nCOMPOSE_PROFILES=\nGRAFANA_ADMIN_PASSWORD=x\n"
                  "PROMETHEUS_PUBLISH=127.0.0.1:9090\nOCRGAN_PUBLISH=127.0.0.1:8000-8002\nOCRGAN_ENV_FILE=./deploy/ocrgan.env\n"
                  "OCRGAN_CHECKPOINTS_DIR=./deploy/checkpoints\nexport HTTP_PROXY=http://proxy:3128\n")


def test_a_dotenv_shared_with_compose_is_accepted(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(COMPOSE_DOTENV + "OCRGAN_MAX_BATCH=3\n")
    assert Settings().max_batch == 3
    (tmp_path / ".env").write_text(COMPOSE_DOTENV + "OCRGAN_MAX_BACH=3\n")
    with pytest.raises(ValueError, match="OCRGAN_MAX_BACH"):
        Settings()


def test_the_cli_starts_with_a_compose_dotenv(monkeypatch, tmp_path, mp4_clip, checkpoint, capsys):
    """`ocrgan serve` and `ocrgan score` build their settings the same way; score runs to the end."""
    from ocrgan_cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(COMPOSE_DOTENV + f"OCRGAN_CHECKPOINT={checkpoint}\nOCRGAN_DEVICE=cpu\n")
    assert main(["score", str(mp4_clip)]) == 0
    assert "30 frames" in capsys.readouterr().out


def test_compose_variables_are_exactly_those_of_the_compose_file():
    """Every ${OCRGAN_*} of docker-compose.yml is a setting or a known Compose variable, and vice versa."""
    import re
    from pathlib import Path

    from service.settings import COMPOSE_VARIABLES

    text = (Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text()
    used = {v.lower() for v in re.findall(r"\$\{OCRGAN_([A-Z0-9_]+)", text)}
    assert used - set(Settings.model_fields) == COMPOSE_VARIABLES


def test_backoff_doubles_up_to_the_cap_with_jitter_and_restarts_after_reset():
    b = Backoff(1.0, 10.0)
    for full in [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]:
        assert full / 2 <= b.next() <= full
    b.reset()
    assert 0.5 <= b.next() <= 1.0
    waits = {Backoff(1.0, 10.0).next() for _ in range(20)}
    assert len(waits) > 1  # jittered: cameras that failed together do not retry in step


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_backoff_refuses_a_base_that_is_not_positive_or_above_the_cap(base, cap):
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base, cap)
