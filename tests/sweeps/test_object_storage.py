"""A sweep on object storage for real: an S3-compatible server (moto in server mode) on
127.0.0.1, reached through pyarrow's S3 file system as Ray Tune reaches S3. The sweep runs into
``s3://bucket/prefix``, loses a trial, is resumed from the bucket, and is reported from it."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import pandas as pd
import pyarrow.fs as pafs
import pytest
import yaml

from sweeps.storage import load_results, local_copy
from sweeps.trainable import FAIL_ONCE_ENV

pytest.importorskip("moto", reason="the object-storage test needs moto[server] (the dev extra)")

BUCKET, PREFIX, NAME = "sweeps", "team/drive", "s3demo"
SWEEP = {
    "name": NAME, "retries": 0, "checkpoint_every": 1, "max_concurrent": 2,
    "experiment": {"dataset": "digits", "model": "digits_cnn", "model_args": {"width": 0.5},
                   "device": "cpu", "method": "magnitude", "train": {"epochs": 4, "batch_size": 128}},
    "sweep": {"sparsity": [0.5, 0.9]},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 and the environment that points AWS clients at it."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "moto server did not start"
                time.sleep(0.1)
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            pafs.S3FileSystem(allow_bucket_creation=True, endpoint_override=env["AWS_ENDPOINT_URL"]).create_dir(BUCKET)
            yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def sweep(s3, tmp_path_factory):
    """Run (one trial dies and is not retried), resume, report: each a CLI call, as a user would."""
    base = tmp_path_factory.mktemp("s3sweep")
    tmp = base / "tmp"  # the commands' TMPDIR: whatever they leave behind stays visible here
    tmp.mkdir()
    (base / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    # Ray's sessions stay in Ray's usual place (socket paths must be short)
    env = {**os.environ, **s3, "TMPDIR": str(tmp), "RAY_TMPDIR": os.environ.get("RAY_TMPDIR", "/tmp/ray"),
           FAIL_ONCE_ENV: f"2:{base / 'died'}"}
    uri = f"s3://{BUCKET}/{PREFIX}/{NAME}"

    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "sweeps.cli", *args], cwd=base, env=env,
                                capture_output=True, text=True, timeout=400)
        (base / f"{args[0]}.log").write_text(result.stdout + result.stderr)
        return result

    runs = {"run": cli("run", str(base / "sweep.yaml"), "--storage", f"s3://{BUCKET}/{PREFIX}")}
    runs["resume"] = cli("resume", uri)
    runs["report"] = cli("report", uri, "--out", str(base / "report"))
    return {"runs": runs, "uri": uri, "base": base, "tmp": tmp, "died": base / "died"}


def bucket_files(uri: str) -> list[str]:
    fs, root = pafs.FileSystem.from_uri(uri)
    return [i.path[len(root) + 1:] for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
            if i.type == pafs.FileType.File]


def test_the_sweep_ran_into_the_bucket_and_a_lost_trial_resumed_from_it(sweep):
    run, resume = sweep["runs"]["run"], sweep["runs"]["resume"]
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"trials: (1 finished, 1 errored|1 errored, 1 finished)", run.stdout), run.stdout[-3000:]
    assert sweep["died"].exists()
    assert resume.returncode == 0, resume.stdout[-3000:] + resume.stderr[-3000:]
    assert "trials: 2 finished" in resume.stdout
    files = bucket_files(sweep["uri"])
    assert {"sweep.yaml", "results.csv", "results.parquet", "tuner.pkl"} <= set(files)
    assert sum(f.endswith("/metrics.jsonl") for f in files) == 2
    assert any("/checkpoint_" in f for f in files)
    with local_copy(sweep["uri"]) as folder:  # the errored trial went on from its checkpoint
        records = [[json.loads(line) for line in p.read_text().splitlines()]
                   for p in folder.glob("*/metrics.jsonl")]
    resumed = [lines for lines in records if sum(e["event"] == "start" for e in lines) == 2]
    assert len(resumed) == 1
    lines = resumed[0]
    second = max(i for i, e in enumerate(lines) if e["event"] == "start")
    trained = lambda part: [e["epochs_done"] for e in part if e["event"] == "epoch" and "train_loss" in e]  # noqa: E731
    assert trained(lines[:second])[:2] == [1, 2]
    assert lines[second]["resumed"] and trained(lines[second:])[-1] == 4
    assert trained(lines[second:])[0] > 1  # the new attempt went on from a checkpoint, not from 0
    assert lines[-1]["event"] == "end" and lines[-1]["status"] == "finished"


def test_report_reads_straight_from_the_bucket(sweep):
    report = sweep["runs"]["report"]
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    out = sweep["base"] / "report"
    assert (out / "report.md").exists() and (out / "figures" / "accuracy_vs_sparsity.png").exists()
    table = pd.read_csv(out / "results.csv")
    assert set(table["experiment"]) == {NAME}
    assert table["path"].str.startswith(sweep["uri"] + "/").all()
    assert sorted(table["sparsity"]) == [0.5, 0.9] and (table["status"] == "finished").all()
    assert f"`{sweep['uri']}`" in (out / "report.md").read_text()
    in_bucket = pd.read_csv(pafs.FileSystem.from_uri(sweep["uri"] + "/results.csv")[0]
                            .open_input_stream(f"{BUCKET}/{PREFIX}/{NAME}/results.csv"))
    assert set(in_bucket["experiment"]) == {NAME}


def test_no_temporary_folder_is_left_behind(sweep):
    assert not list(sweep["tmp"].iterdir())
    folder = None
    with local_copy(sweep["uri"]) as folder:
        assert folder.name == NAME and list(folder.glob("*/metrics.jsonl"))
    assert not folder.exists()
    frame = load_results([sweep["uri"]])
    assert set(frame["experiment"]) == {NAME}


def test_a_missing_bucket_path_is_one_line(s3, tmp_path, capsys):
    from sweeps.cli import main

    assert main(["report", f"s3://{BUCKET}/nothing/here", "--out", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip() == "drive-sweep: error: EXPERIMENT_DIR: s3://sweeps/nothing/here does not exist"
