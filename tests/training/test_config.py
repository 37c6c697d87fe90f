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


def test_without_model_settings_the_recipe_is_trained_and_overrides_change_one_field_of_it(tmp_path):
    from training.config import RECIPE, TrainConfig

    plain = load_config(None).model_cfg()
    assert plain.motion and plain.memory_size == 4096 and plain.objective == "mixed" and plain.nc == 1
    assert plain.steady and plain.speed_classes == 6 and plain.exposure is None
    assert plain == TrainConfig().model_cfg() == load_config(None, ["epochs=2"]).model_cfg()
    one = load_config(None, ["model.temporal=coarse"]).model_cfg()
    assert one.temporal == "coarse" and one.motion and one.memory_size == RECIPE["memory_size"]
    no_model = tmp_path / "budget.yaml"
    no_model.write_text("max_minutes: 30\n")
    assert load_config(no_model).model_cfg() == plain
    stated = tmp_path / "seed.yaml"
    stated.write_text("model:\n  nc: 3\n")  # a file's model is the whole model: the seed's defaults but nc
    seed = load_config(stated).model_cfg()
    assert not seed.motion and seed.memory_size == 0 and seed.nc == 3
    with pytest.raises(ValidationError):
        load_config(tmp_path / "c.yaml" if (tmp_path / "c.yaml").write_text("model: 3\n") else None)
