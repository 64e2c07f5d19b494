"""cluster.yaml and kuberay-rayjob.yaml: valid for their tools, credential-free, wired to the CLI."""

import copy
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.scripts.scripts import start as ray_start

from sweeps.cli import sweep_file

ROOT = Path(__file__).resolve().parents[2]
RAYJOB_SCHEMA = Path(__file__).parent / "fixtures" / "rayjob-crd-schema-v1.7.0.yaml"
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


def test_ray_start_commands_use_options_that_ray_start_has():
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    options = {opt for param in ray_start.params for opt in param.opts}
    for command in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]:
        for part in command.split(";"):
            words = shlex.split(part)
            if words[:2] == ["ray", "start"]:
                used = {w.split("=")[0] for w in words[2:] if w.startswith("--")}
                assert used <= options, used - options


def _mounted_copy(cfg: dict, dest: Path) -> dict[str, str]:
    """Copy the project as the launcher's file_mounts + rsync_exclude would; return the mapping."""
    mapping = {}
    for remote, local in cfg["file_mounts"].items():
        source = (ROOT / local).resolve()
        assert source == ROOT, "cluster.yaml mounts the project folder"
        excluded = [p.rstrip("/") for p in cfg.get("rsync_exclude", [])]

        def ignore(folder, names):
            return [n for n in names if any(fnmatch.fnmatch(n, p.split("/")[-1]) for p in excluded)]

        shutil.copytree(source, dest, ignore=ignore)
        mapping[remote] = str(dest)
    return mapping


def test_setup_commands_run_in_a_fresh_virtualenv(tmp_path):
    """cluster.yaml's setup commands, run by a fresh virtualenv's python3 on a copy of the project
    shipped as file_mounts ships it. Offline: pip runs in dry-run mode without an index, against
    the packages of this test environment (made visible to the new virtualenv through a .pth), so
    it checks that every requirement parses, the shipped project builds with its extras, and the
    pinned versions are the tested ones; it downloads nothing, so it cannot check what PyPI would
    resolve for ray[default] or boto3's own dependencies on a real node."""
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    mapping = _mounted_copy(cfg, tmp_path / "drive-sweeps")
    assert not (tmp_path / "drive-sweeps" / ".venv").exists()
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    (site / "tested-env.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    ran_project_install = False
    for command in cfg["setup_commands"]:
        for remote, local in mapping.items():
            command = command.replace(remote, local)
        words = shlex.split(command)
        if words[1:4] == ["-m", "pip", "install"]:
            requirements = [w for i, w in enumerate(words[4:], 4) if not w.startswith("-")
                            and words[i - 1] not in ("-c", "-r", "-e")]
            for req in map(Requirement, requirements):  # each parses as a requirement string
                assert req.name in pins or req.name in ("pip", "boto3"), f"{req} is not pinned"
            if "-e" in words:
                path = words[words.index("-e") + 1]
                named = set(path[path.index("[") + 1:path.index("]")].split(","))
                assert named <= set(extras), named - set(extras)
                assert words[words.index("-c") + 1].endswith("constraints.txt")
                ran_project_install = True
            command += " --dry-run --no-build-isolation --no-deps"
        result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    assert ran_project_install and (home / "data").is_dir()
    # and the shipped project's whole dependency tree resolves to the pinned, tested versions
    project = f"{mapping['/home/ubuntu/drive-sweeps']}[optuna]"
    result = subprocess.run([str(env_dir / "bin" / "python3"), "-m", "pip", "install", "--dry-run", "--no-build-isolation",
                             "-c", str(ROOT / "constraints.txt"), "-e", project],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Would install drive-sweeps" in result.stdout.replace("_", "-")


def rayjob_validator() -> jsonschema.Draft202012Validator:
    """The vendored RayJob schema, strict like `kubectl apply` (the default --validate=strict):
    a field the CRD does not define is an error, not silently dropped."""
    schema = yaml.safe_load(RAYJOB_SCHEMA.read_text())

    def strict(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(schema)
    return jsonschema.Draft202012Validator(schema)


def test_kuberay_rayjob_passes_the_rayjob_crd_schema():
    job = yaml.safe_load((ROOT / "kuberay-rayjob.yaml").read_text())
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in rayjob_validator().iter_errors(job)]
    assert not errors, errors


@pytest.mark.parametrize("breakage", [
    lambda j: j["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
    lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update({"maxReplica": 8}),
    lambda j: j["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(
        {"volumeMount": []}),
    lambda j: j["spec"]["rayClusterSpec"]["authOptions"].update({"mode": "password"}),
])
def test_the_rayjob_schema_check_catches_a_broken_file(breakage):
    job = yaml.safe_load((ROOT / "kuberay-rayjob.yaml").read_text())
    broken = copy.deepcopy(job)
    breakage(broken)
    assert list(rayjob_validator().iter_errors(broken))


def test_kuberay_head_accepts_the_submitter_pod_with_a_token():
    """KubeRay's submitter pod calls the head's dashboard through the head service: the dashboard
    must listen on all interfaces of the pod, and token authentication guards it."""
    spec = yaml.safe_load((ROOT / "kuberay-rayjob.yaml").read_text())["spec"]
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"].get("dashboard-host", "0.0.0.0") == "0.0.0.0"
    assert spec["rayClusterSpec"]["authOptions"]["mode"] == "token"
    assert spec.get("submissionMode", "K8sJobMode") == "K8sJobMode"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"


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
