"""cluster.yaml and kuberay-rayjob.yaml: valid for their tools, credential-free, wired to the CLI."""

import re
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from sweeps.cli import sweep_file

ROOT = Path(__file__).resolve().parents[2]
SECRET = re.compile(r"(aws_access_key_id|aws_secret_access_key|secret|password|token)\s*:", re.I)


def test_cluster_yaml_passes_rays_launcher_schema():
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(cfg))
    assert cfg["provider"]["type"] == "aws"
    workers = cfg["available_node_types"]["gpu_worker"]
    assert workers["min_workers"] == 0 < workers["max_workers"]
    assert cfg["available_node_types"][cfg["head_node_type"]]["resources"] == {"CPU": 0, "GPU": 0}
    assert any("pip install" in c and "drive-sweeps" in c for c in cfg["setup_commands"])
    assert "--dashboard-host=127.0.0.1" in " ".join(cfg["head_start_ray_commands"])


def test_the_schema_check_catches_a_broken_file():
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    cfg["max_workers"] = "lots"
    with pytest.raises(Exception, match="max_workers|integer"):
        validate_config(prepare_config(cfg))


@pytest.mark.parametrize("name", ["cluster.yaml", "kuberay-rayjob.yaml"])
def test_no_credentials_in_cluster_files(name):
    assert not SECRET.search((ROOT / name).read_text())


def test_kuberay_rayjob_runs_a_shipped_sweep_on_the_cluster():
    job = yaml.safe_load((ROOT / "kuberay-rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    entry = job["spec"]["entrypoint"].split()
    assert entry[:2] == ["drive-sweep", "run"] and "--address" in entry
    assert entry[entry.index("--address") + 1] == "auto"
    assert Path(sweep_file(entry[2])).is_file()
    groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert any(c["resources"]["limits"].get("nvidia.com/gpu") for g in groups
               for c in g["template"]["spec"]["containers"])


def test_shipped_sweep_names_resolve_and_paths_pass_through(tmp_path):
    assert sweep_file("demo").endswith("sweeps/configs/demo.yaml")
    assert sweep_file("demo.yaml").endswith("sweeps/configs/demo.yaml")
    assert sweep_file(str(tmp_path / "mine.yaml")) == str(tmp_path / "mine.yaml")
    assert sweep_file("no_such_sweep") == "no_such_sweep"


def test_a_folder_named_like_a_shipped_sweep_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # e.g. an old results folder
    assert sweep_file("demo").endswith("sweeps/configs/demo.yaml")
