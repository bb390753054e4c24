"""The one configuration object: validation, presets, JSON."""

import json

import pytest

from hw.config import PRESETS, AccelConfig, preset


@pytest.mark.parametrize("changes,error,message", [
    (dict(data_width=1), ValueError, "data_width must be in 2..32, not 1"),
    (dict(data_width=16.0), TypeError, "data_width must be an int, not 16.0"),
    (dict(acc_width=24), ValueError, "acc_width must be at least 2 \\* data_width = 32"),
    (dict(lanes=0), ValueError, "lanes must be in 1..11, not 0"),
    (dict(max_stride=9), ValueError, "max_stride must be in 1..8, not 9"),
    (dict(max_pad=11), ValueError, "max_pad must be in 0..10, not 11"),
    (dict(max_row=8), ValueError, "max_row must be in 11..1024, not 8"),
    (dict(elements_per_beat=5), ValueError, "elements_per_beat must be in 1..4, not 5"),
    (dict(queue_depth=1), ValueError, "queue_depth must be in 2..64, not 1"),
    (dict(psum_banks=1), ValueError, "psum_banks must be in 2..8, not 1"),
    (dict(skipping=1), TypeError, "skipping must be a bool, not 1"),
    (dict(pe_rows=True), TypeError, "pe_rows must be an int, not True"),
    (dict(stream_width=68), ValueError, "stream_width must be a multiple of 8, not 68"),
    (dict(stream_width=40), ValueError, "stream_width must hold one output of acc_width = 48"),
    (dict(program_depth=1), ValueError, "program_depth must be in 2..1048576, not 1"),
    (dict(output_depth="64"), TypeError, "output_depth must be an int, not '64'"),
])
def test_bad_parameters(changes, error, message):
    with pytest.raises(error, match=message):
        AccelConfig(**changes)


def test_presets_and_names():
    for name, config in PRESETS.items():
        assert config.name == name
        assert preset(name) is config
    custom = AccelConfig(max_row=48)
    assert custom.name == "custom-max_row48"
    with pytest.raises(ValueError, match="config preset must be one of small, dual, narrow, queues, default, paper"):
        preset("huge")


def test_json_round_trip():
    config = PRESETS["dual"]
    values = json.loads(config.to_json())
    assert values["name"] == "dual" and values["lanes"] == 2
    assert AccelConfig.from_dict(values) == config
    with pytest.raises(ValueError, match="unknown configuration field"):
        AccelConfig.from_dict({"lanez": 2})


def test_derived_widths():
    config = PRESETS["default"]
    assert config.index_width == 6            # 0..32
    assert (config.data_min, config.data_max) == (-32768, 32767)
    assert config.acc_max == (1 << 47) - 1
