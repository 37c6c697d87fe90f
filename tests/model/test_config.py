import pytest

from model import OCRGANConfig


def test_defaults_follow_the_seed():
    cfg = OCRGANConfig()
    assert (cfg.num_frames, cfg.isize, cfg.nz, cfg.ngf, cfg.ndf) == (16, 64, 100, 64, 64)
    assert (cfg.w_adv, cfg.w_con, cfg.w_lat) == (1.0, 50.0, 1.0)
    assert (cfg.w_temporal_consistency, cfg.w_temporal_motion, cfg.w_temporal_reg) == (0.1, 0.05, 0.01)
    assert cfg.hw == (64, 64)


@pytest.mark.parametrize("size,depth", [(64, 4), (128, 5), (256, 6), ((128, 192), 5), ((120, 180), 2)])
def test_depth_is_derived_from_the_size(size, depth):
    assert OCRGANConfig(isize=size).unet_depth == depth


def test_round_trip_through_dict_keeps_a_rectangular_size():
    cfg = OCRGANConfig(isize=(128, 192), temporal="basic", nc=1)
    again = OCRGANConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.hw == (128, 192)


@pytest.mark.parametrize("bad", [dict(temporal="lstm"), dict(objective="denoise"), dict(nc=2),
                                 dict(stride=0), dict(stride=17), dict(isize=(100, 64), depth=4),
                                 dict(score_smoothing=1.0)])
def test_invalid_values_are_refused(bad):
    with pytest.raises(ValueError):
        OCRGANConfig(**bad)


def test_a_motion_memory_without_the_motion_band_is_refused():
    with pytest.raises(ValueError, match="direction_memory needs the motion band"):
        OCRGANConfig(motion=False, direction_memory=64)
    assert OCRGANConfig(motion=True, direction_memory=64).direction_memory == 64


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown config keys"):
        OCRGANConfig.from_dict({"isize": 64, "bogus": 1})


def test_frozen():
    with pytest.raises(AttributeError):
        OCRGANConfig().ngf = 3  # type: ignore[misc]
