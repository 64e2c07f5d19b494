"""`drive-sweep bench-model`: a pruned network's forward pass, dense-masked vs sparse, from a
checkpoint (its own masks) or a record (random masks of its layer densities)."""

import json

from sweeps.cli import main

FAST = ["--method", "magnitude", "--sparsity", "0.9", "--epochs", "1", "--device", "cpu",
        "--set", "model_args.width=0.5", "--quiet"]


def test_from_a_checkpoint_and_from_a_record(tmp_path, capsys):
    ck, out = tmp_path / "s.pt", tmp_path / "m.jsonl"
    assert main(["prune", *FAST, "--checkpoint", str(ck), "--out", str(out)]) == 0
    capsys.readouterr()
    measured = tmp_path / "inference.json"
    assert main(["bench-model", str(ck), "--batch", "1,4", "--repeat", "1", "--out", str(measured)]) == 0
    printed = capsys.readouterr().out
    assert "magnitude at sparsity 0.9 (density 0.1000) from a checkpoint" in printed
    m = json.loads(measured.read_text())
    assert [t["batch"] for t in m["timings"]] == [1, 4]
    assert all(t["max_abs_diff"] <= 1e-4 * max(1.0, t["max_abs_output"]) for t in m["timings"])
    record = json.loads(out.read_text().splitlines()[-1])
    assert m["theory"]["flops"] == record["flops"] and m["source"] == "checkpoint"
    assert main(["bench-model", str(out), "--batch", "2", "--repeat", "1"]) == 0
    assert "from a record (random masks of its layer densities)" in capsys.readouterr().out


def test_a_path_that_is_neither_is_one_line(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("hello\n")
    assert main(["bench-model", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drive-sweep: error: checkpoint: cannot read"), err
    assert main(["bench-model", str(tmp_path / "none")]) == 2
    assert "PATH: " in capsys.readouterr().err
