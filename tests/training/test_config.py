import pytest
from pydantic import ValidationError

from training.config import load_config, parse_override


def test_yaml_and_toml_files_with_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("epochs: 3\nmodel:\n  ngf: 16\n  isize: [128, 192]\n")
    cfg = load_config(y, ["model.temporal=basic", "batch_size=2"])
    assert cfg.epochs == 3 and cfg.batch_size == 2
    m = cfg.model_cfg()
    assert m.ngf == 16 and m.hw == (128, 192) and m.temporal == "basic"
    t = tmp_path / "c.toml"
    t.write_text('epochs = 2\n[model]\nnc = 1\n')
    assert load_config(t).model_cfg().nc == 1


def test_typos_fail_loudly():
    with pytest.raises(ValidationError):
        load_config(None, ["epoch=3"])
    with pytest.raises(ValidationError, match="unknown config keys"):
        load_config(None, ["model.ngff=3"])
    with pytest.raises(ValidationError):
        load_config(None, ["model.temporal=lstm"])


def test_override_values_are_typed():
    assert parse_override("model.isize=[64, 96]") == ("model.isize", [64, 96])
    assert parse_override("lr_g=1e-3") == ("lr_g", 1e-3)
    with pytest.raises(ValueError):
        parse_override("epochs")
