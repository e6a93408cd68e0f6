"""The accelerator check (`python -m benchmarks.perf.accelerator`): one command runs the speed
benchmarks and writes a JSON and a Markdown table named after the device."""

import json

import pytest

from benchmarks.perf import accelerator


def test_device_names_are_file_safe():
    assert accelerator.slug("NVIDIA H100 80GB HBM3") == "nvidia_h100_80gb_hbm3"
    assert accelerator.slug("cpu") == "cpu" and accelerator.slug("???") == "device"


@pytest.mark.slow
def test_one_command_writes_the_device_table(tmp_path, capsys):
    # One cheap benchmark (Chain, batch 1, one round): the whole pipeline, not the numbers.
    select = "test_env_steps_per_second and chain and B1"
    assert accelerator.main(["--rough", "-k", select, "--out", str(tmp_path)]) == 0
    info = accelerator.device_info()
    name = accelerator.slug(info["device_kind"])
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["device"] == info and data["versions"]["jax"] == info["jax"]
    (record,) = data["benchmarks"]
    assert record["kind"] == "env" and record["batch"] == 1 and record["steps_per_second"] > 0
    table = (tmp_path / f"{name}.md").read_text()
    assert table.startswith(f"# Speed on {info['device_kind']}")
    assert "Environment steps/s" in table and "chain-v1" in table
    assert f"wrote {tmp_path / name}.json" in capsys.readouterr().out
