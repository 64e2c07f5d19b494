import pytest

from sweeps.cli import main
from sweeps.spec import SweepError, load_spec, trial_config


def problems(tree) -> list[str]:
    with pytest.raises(SweepError) as info:
        load_spec(tree=tree)
    return info.value.problems


def test_the_shipped_sweep_files_are_valid():
    from importlib import resources

    folder = resources.files("sweeps") / "configs"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
    assert {"demo.yaml", "mnist1d.yaml", "cifar10_resnet18.yaml", "cifar10_vgg16.yaml", "cifar10_alexnet.yaml",
            "cifar100_vgg16.yaml", "tinyimagenet_resnet18.yaml", "imagenet_resnet50.yaml",
            "drive_ablation.yaml"} <= set(names)
    for name in names:
        load_spec(str(folder / name))


@pytest.mark.parametrize("tree,start", [
    ({"bogus": 1}, "bogus: unknown field"),
    ({"sweep": {"sparsity": 0.5}}, "sweep: Value error, sparsity: must be a list"),
    ({"sweep": {"sparsity": []}}, "sweep: Value error, sparsity: an axis needs at least one value"),
    ({"sweep": {"train.lr": {"gaussian": [0, 1]}}}, "sweep: Value error, train.lr: a sampled axis is one of"),
    ({"resources": {"gpu": -1}}, "resources.gpu:"),
    ({"search": {"algorithm": "bayes"}}, "search.algorithm:"),
    ({"storage": "ftp://x/y"}, "storage: Value error, unsupported scheme"),
    ({"name": "a b"}, "name:"),
    ({"experiment": {"method": "obd"}}, "experiment.method:"),
    ({"experiment": {"train": {"epochs": 0}}}, "experiment.train.epochs:"),
    ({"sweep": {"sparsity": [0.5, 1.5]}}, "sweep: sparsity: must be in [0, 1) (e.g. trial"),
    ({"sweep": {"method": ["drive", "nope"]}}, "sweep: method: unknown method 'nope'; allowed: dense, drive"),
    ({"sweep": {"warmup_epochs": [1, 20]}, "experiment": {"train": {"epochs": 5}}},
     "sweep: warmup_epochs: must be less than train.epochs (5), got 20"),
    ({"sweep": {"train.lr": {"uniform": [-1, 0.1]}}}, "sweep: train.lr:"),
])
def test_a_bad_field_gives_one_line_naming_it(tree, start):
    found = problems(tree)
    assert len(found) == 1, found
    assert found[0].replace("Value error, ", "").startswith(start.replace("Value error, ", "")), found


def test_a_bad_axis_value_is_one_line_however_many_trials_have_it():
    found = problems({"sweep": {"method": ["snip", "grasp", "magnitude"], "seed": [0, 1, 2],
                                "sparsity": [1.5]}})
    assert len(found) == 1


def test_overrides_apply_to_the_sweep_file(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nexperiment: {train: {epochs: 4}}\nsweep: {seed: [0, 1]}\n")
    spec = load_spec(f, ["experiment.train.epochs=3", "sweep.seed=[3]", "resources.gpu=0.25"])
    assert spec.experiment["train"]["epochs"] == 3
    assert spec.sweep["seed"] == [3] and spec.resources.gpu == 0.25


def test_trial_config_sets_dotted_fields_on_the_base():
    cfg = trial_config({"train": {"epochs": 5}}, {"method": "drive", "drive.weights": [1, 0, 0],
                                                  "train.lr": 0.01})
    assert cfg.drive.weights == [1.0, 0.0, 0.0] and cfg.train.lr == 0.01 and cfg.train.epochs == 5


def test_cli_run_rejects_an_invalid_sweep_file_with_exit_2_and_one_line(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("sweep:\n  sparsity: [0.5, 2.0]\n")
    assert main(["run", str(f), "--storage", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drive-sweep: error: sweep: sparsity: must be in [0, 1)")
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err
