import pytest

from sweeps.checks import load_sweep
from sweeps.cli import main
from sweeps.spec import SweepError, load_spec
from sweeps.trials import trial_config


def problems(tree) -> list[str]:
    with pytest.raises(SweepError) as info:
        load_sweep(tree=tree)
    return info.value.problems


def test_the_shipped_sweep_files_are_valid():
    from importlib import resources

    folder = resources.files("sweeps") / "configs"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
    assert {"demo.yaml", "mnist1d.yaml", "cifar10_resnet18.yaml", "cifar10_vgg16.yaml", "cifar10_alexnet.yaml",
            "cifar100_vgg16.yaml", "tinyimagenet_resnet18.yaml", "imagenet_resnet50.yaml",
            "drive_ablation.yaml", "mnist1d_mlp.yaml"} <= set(names)
    for name in names:
        load_sweep(str(folder / name))


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
    ({"sweep": {"train.lr": {"choice": []}}}, "sweep: Value error, train.lr: choice needs at least one value"),
    ({"sweep": {"train.lr": {"uniform": [0.2, 0.1]}}}, "sweep: Value error, train.lr: uniform needs low < high"),
    # each sampler's own arguments, as Ray Tune would only refuse them once the sweep runs
    ({"sweep": {"train.lr": {"uniform": [0.01, 0.1, 3]}}}, "sweep: train.lr: uniform takes a list of arguments, [low, high]"),
    ({"sweep": {"seed": {"randint": [0, 4, 2]}}}, "sweep: seed: randint takes a list of arguments, [low, high]"),
    ({"sweep": {"train.lr": {"quniform": [0.01, 0.1]}}}, "sweep: train.lr: quniform takes a list of arguments, [low, high, q]"),
    ({"sweep": {"train.lr": {"quniform": [0.01, 0.1, 0]}}}, "sweep: train.lr: quniform takes [low, high, q] with q > 0"),
    ({"sweep": {"train.weight_decay": {"loguniform": [0, 0.1]}}}, "sweep: train.weight_decay: loguniform needs low > 0"),
    # a continuous range over an integer or boolean field fails at a value inside it
    ({"sweep": {"train.epochs": {"quniform": [4, 8, 0.5]}}}, "sweep: train.epochs: Input should be a valid integer"),
    ({"sweep": {"train.nesterov": {"uniform": [0, 1]}}}, "sweep: train.nesterov: Input should be a valid boolean"),
    ({"name": ".."}, "name: must be a folder name of letters, digits"),
    ({"name": "a/b"}, "name: must be a folder name of letters, digits"),
    ({"search": {"metric": "accuracy"}}, "search.metric: Value error, no trial reports 'accuracy'"),
    ({"search": {"num_samples": 3}}, "search.num_samples: 3 would repeat identical trials"),
    ({"search": {"algorithm": "optuna"}, "experiment": {"data": {"val_fraction": 0.1}}},
     "search.algorithm: optuna has nothing to search"),
    ({"scheduler": {"name": "asha"}, "experiment": {"data": {"val_fraction": 0.1}},
      "search": {"metric": "test_acc"}}, "search.metric: test_acc would select trials on the test set"),
    ({"scheduler": {"name": "asha"}}, "search.metric: val_acc needs a validation split"),
    ({"scheduler": {"name": "asha", "max_t": 5}, "experiment": {"data": {"val_fraction": 0.1}}},
     "scheduler.max_t: 5 is less than the 12 training epochs of the longest trial"),
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
    assert cfg.args.weights == [1.0, 0.0, 0.0] and cfg.train.lr == 0.01 and cfg.train.epochs == 5


def test_cli_run_rejects_an_invalid_sweep_file_with_exit_2_and_one_line(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("sweep:\n  sparsity: [0.5, 2.0]\n")
    assert main(["run", str(f), "--storage", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drive-sweep: error: sweep: sparsity: must be in [0, 1)")
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_dotted_sweep_axes_and_sections_and_text_names(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nsweep: {method: [drive], train: {momentum: [0.8, 0.9]}}\n")
    spec = load_spec(f, ["sweep.drive.weights=[[1, 1, 1], [1, 0, 0]]", "sweep.train.lr=[0.1, 0.01]"],
                     fields={"name": "2024"})
    assert spec.sweep == {"method": ["drive"], "train.momentum": [0.8, 0.9],
                          "drive.weights": [[1, 1, 1], [1, 0, 0]], "train.lr": [0.1, 0.01]}
    assert spec.name == "2024"
    assert load_spec(f, ["name=2024"]).name == "2024"  # a YAML number is still a name


def test_selection_on_test_is_allowed_only_when_asked():
    tree = {"scheduler": {"name": "asha"}, "experiment": {"data": {"val_fraction": 0.1}},
            "search": {"metric": "test_acc", "allow_test_selection": True}}
    assert load_sweep(tree=tree).spec.selects
    grid = load_spec(tree={"search": {"metric": "test_acc"}})  # a grid selects nothing
    assert not grid.selects and grid.search.resolved_mode == "max"
    assert load_spec(tree={"search": {"metric": "val_loss"}}).search.resolved_mode == "min"


def test_empty_and_binary_sweep_files_are_one_line(tmp_path, capsys):
    empty, binary = tmp_path / "empty.yaml", tmp_path / "bin.yaml"
    empty.write_text("")
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["run", str(empty)]) == 2 and main(["run", str(binary)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"drive-sweep: error: sweep file: {empty} is empty; give at least one field "
                   "(or no file for the defaults)",
                   f"drive-sweep: error: sweep file: {binary} is not a text file (binary content); "
                   "give a YAML file"]
