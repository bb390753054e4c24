"""The report of gen/report.py on a tiny network (``make report`` runs AlexNet and ResNet-18)."""

import json

import pytest
import torch
from torch import nn

from gen.__main__ import main
from gen.model.report import PUBLISHED, build_report, write_report
from hw.config import PRESETS


def tiny(name, *, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3)), (3, 16, 16)


def test_report_from_training_and_from_its_densities(tmp_path):
    config = PRESETS["small"]
    report = build_report(config, ["tiny"], steps=1, progress=False, build=tiny)
    paths = write_report(report, tmp_path, "python -m gen report (test)")
    assert sorted(path.name for path in paths) == sorted(
        ["report.md", "report.json", "densities.json", "tiny.png", "summary.png"])
    for path in paths:
        assert path.stat().st_size > 0
    text = (tmp_path / "report.md").read_text()
    assert f"{PUBLISHED['speedup']}x speedup" in text and "| tiny | whole step |" in text
    # The on-chip storage it states is the config's (checked against Yosys in test_synth):
    # a stationary entry, a scratchpad line per PE, of 4 PEs x 4 operands x 16 bits is
    # 4 load beats.
    storage = report["on_chip_storage"]
    assert storage["memories"]["stationary buffer"] == {
        "kind": "sram", "bits": config.stationary_depth * 4 * config.stream_width}
    assert storage["total_bits"] == sum(m["bits"] for m in storage["memories"].values())
    assert f"On-chip storage of the small preset: {storage['total_bits']:,} bits" in text
    entry = report["models"]["tiny"]
    assert [e["layer"] for e in entry["layers"] if e["phase"] == "ff"] == ["0", "3", "6"]
    assert entry["summary"]["step"]["speedup"] > 1
    # The densities it wrote drive a what-if run with random operands.
    densities = json.loads((tmp_path / "densities.json").read_text())
    again = build_report(config, ["tiny"], densities=densities, progress=False, build=tiny)
    assert again["models"]["tiny"]["densities"] == densities["tiny"]
    assert again["models"]["tiny"]["summary"]["step"]["dense_macs"] == \
        entry["summary"]["step"]["dense_macs"]


def test_report_command_refuses_a_bad_densities_file(tmp_path, capsys):
    bad = tmp_path / "densities.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        main(["report", "--densities", str(bad), "--out", str(tmp_path / "out")])
    assert "must hold a JSON object" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--densities", str(tmp_path / "missing.json")])
    assert "cannot read --densities" in capsys.readouterr().err
