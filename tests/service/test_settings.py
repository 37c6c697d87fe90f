"""Settings: environment and .env, typos refused, sane defaults."""

from __future__ import annotations

import pytest

from service.settings import DEFAULT_CHECKPOINT, Settings


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
