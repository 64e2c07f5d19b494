"""A sweep on a Ray cluster of several nodes on this machine (``ray.cluster_utils.Cluster``: a
head and worker nodes as separate raylets; a shared folder stands in for NFS storage).

One sweep, attached with ``--address``, serves every assertion: a node is lost mid-trial, its
trial continues from its checkpoint on a node that joined after the sweep started and ends
with the same metrics as its uncrashed twins, and every node prepares its own data once.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import yaml
from ray.cluster_utils import Cluster

FAKES = Path(__file__).resolve().parents[1] / "fakes"
EPOCHS = 8
SWEEP = {
    "name": "nodeloss",
    "checkpoint_every": 1,
    "retries": 3,
    "report_every_s": 1,
    "reuse_actors": False,  # each trial in its own worker process, placed where a CPU is free
    "experiment": {
        "dataset": "drive_test_fakes:downloading_digits",
        "model": "drive_test_fakes:slow_digits_cnn", "model_args": {"width": 0.5, "delay": 0.03},
        "device": "cpu", "method": "magnitude", "sparsity": 0.8,
        "data": {"root": "$DRIVE_NODE_DATA/data", "download": True},  # each node's own disk
        "train": {"epochs": EPOCHS, "batch_size": 128}},
    # three identical experiments: data.num_workers is unused by this data set
    "sweep": {"data.num_workers": [3, 4, 5]},
}


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(what, condition, timeout, proc=None, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended while waiting for {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:] if log else ''}")


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    base = tmp_path_factory.mktemp("cluster")
    events = base / "events.jsonl"
    nodes = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(FAKES), *sys.path]))
        mp.setenv("DRIVE_TEST_EVENTS", str(events))
        mp.setenv("OMP_NUM_THREADS", "1")

        def start(label, **args):
            # a raylet and its workers inherit the environment it is started with
            mp.setenv("DRIVE_TEST_NODE", label)
            mp.setenv("DRIVE_NODE_DATA", str(base / "nodes" / label))
            nodes[label] = cluster.add_node(**args)

        cluster = Cluster()
        start("head", num_cpus=0, _system_config={"health_check_initial_delay_ms": 0,
                                                  "health_check_period_ms": 500,
                                                  "health_check_failure_threshold": 4})
        start("a", num_cpus=1)
        start("b", num_cpus=1)
        cluster.wait_for_nodes()

        (base / "sweep.yaml").write_text(yaml.safe_dump({**SWEEP, "storage": str(base / "shared")}))
        path = base / "shared" / "nodeloss"
        log = base / "driver.log"
        mp.setenv("DRIVE_TEST_NODE", "driver")
        mp.setenv("DRIVE_NODE_DATA", str(base / "nodes" / "driver"))
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", "run", str(base / "sweep.yaml"),
                                 "--address", cluster.address], stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            def on_node(label):
                return {e["num_workers"] for e in read_jsonl(events) if e["event"] == "load" and e["node"] == label}

            def epochs_of(num_workers):
                for trial in path.glob("*/params.json"):
                    if json.loads(trial.read_text())["trial"]["data.num_workers"] == num_workers:
                        return [e.get("epochs_done", 0) for e in read_jsonl(trial.parent / "result.json")]
                return []

            victim = next(iter(wait_for("a trial on node a", lambda: on_node("a"), 180, proc, log)))
            # a node joins after the sweep started: it takes the waiting trial
            start("c", num_cpus=2)
            # past epoch 3: a checkpoint reaches Tune with the report after it (it is written in the
            # background meanwhile), so the one of epoch 2 is in by then
            wait_for("the trial of node a past epoch 3", lambda: max(epochs_of(victim), default=0) >= 3,
                     120, proc, log)
            cluster.remove_node(nodes["a"], allow_graceful=False)
            lost_at = time.time()
            proc.wait(timeout=300)
            yield {"rc": proc.returncode, "log": log.read_text(), "path": path, "victim": victim,
                   "events": read_jsonl(events), "lost_at": lost_at, "seconds": time.time() - started,
                   "nodes": base / "nodes"}
        finally:
            if proc.poll() is None:
                proc.kill()
            ray.shutdown()
            cluster.shutdown()


def trials(path: Path) -> dict[int, list[dict]]:
    """data.num_workers -> that trial's result.json lines."""
    out = {}
    for params in path.glob("*/params.json"):
        out[json.loads(params.read_text())["trial"]["data.num_workers"]] = read_jsonl(params.parent / "result.json")
    return out


def test_the_sweep_attached_with_address_and_finished(drill):
    assert drill["rc"] == 0, drill["log"][-4000:]
    assert "trials: 3 finished" in drill["log"]
    # the trials ran on the cluster's worker nodes, not in a Ray started by the driver
    driver_pid_loads = {e["pid"] for e in drill["events"] if e["node"] == "driver"}
    assert len(driver_pid_loads) == 1  # the driver's own check before Ray, in its process
    assert {e["node"] for e in drill["events"] if e["event"] == "load"} - {"driver"} <= {"a", "b", "c"}


def test_a_trial_whose_node_is_lost_continues_from_its_checkpoint_and_ends_like_its_twins(drill):
    runs = trials(drill["path"])
    assert sorted(runs) == [3, 4, 5]
    victim = runs[drill["victim"]]
    by_pid = {}
    for line in victim:
        if line.get("event") == "epoch" and "train_loss" in line:
            by_pid.setdefault(line["pid"], []).append(line["epochs_done"])
    assert len(by_pid) == 2, by_pid  # one worker process on the lost node, one after it
    before, after = by_pid.values()
    assert before[:2] == [1, 2] and after[-1] == EPOCHS
    assert after[0] >= 3 and after[0] <= before[-1] + 1  # from its last checkpoint, not from epoch 1
    finals = {n: next(e for e in lines if e.get("event") == "end") for n, lines in runs.items()}
    keys = ("test_acc", "best_test_acc", "test_loss", "density", "layer_density", "params_remaining")
    for n in finals:
        assert {k: finals[n][k] for k in keys} == {k: finals[drill["victim"]][k] for k in keys}


def test_each_node_prepares_its_data_once_even_one_that_joined_late(drill):
    events = drill["events"]
    downloads = [e for e in events if e["event"] == "download-start"]
    per_node = {}
    for e in downloads:
        per_node.setdefault(e["node"], []).append(e)
    # the driver before Ray, the first two workers, and node c that joined after the sweep started
    assert sorted(per_node) == ["a", "b", "c", "driver"]
    assert all(len(d) == 1 for d in per_node.values()), per_node
    late = {e["num_workers"] for e in events if e["node"] == "c" and e["event"] == "load"}
    assert late - {drill["victim"]}  # node c took the trial that was waiting for a CPU
    retried = [e["node"] for e in events if e["event"] == "load" and e["num_workers"] == drill["victim"]
               and e["node"] != "driver" and e["time"] > drill["lost_at"]]
    assert retried and set(retried) <= {"b", "c"}  # the lost node's trial went on elsewhere
    for label in ("b", "c", "driver"):
        assert list((drill["nodes"] / label / "data" / ".drive-sweeps").glob("*.prepared"))
