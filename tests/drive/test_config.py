import pytest

from drive.config import ExperimentConfig, apply_overrides, build_config, load_config, read_yaml
from drive.errors import ConfigError


def errors_of(tree) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(tree)
    return info.value.problems


def test_defaults_are_drive_on_digits_at_90_percent():
    cfg = ExperimentConfig()
    assert (cfg.method, cfg.dataset, cfg.sparsity) == ("drive", "digits", 0.9)
    assert cfg.iterations == 10 and cfg.args.weights == [1.0, 1.0, 1.0]
    assert cfg.args.normalize == "mean" and cfg.args.combine == "sum"


@pytest.mark.parametrize("method,t", [("drive", 10), ("synflow", 100), ("snip", 1), ("grasp", 1),
                                      ("magnitude", 1), ("random", 1)])
def test_method_default_iterations(method, t):
    assert build_config({"method": method}).iterations == t
    assert build_config({"method": method, "prune_iterations": 7}).iterations == 7


@pytest.mark.parametrize("tree,field", [
    ({"method": "obd"}, "method:"),
    ({"sparsity": 1.0}, "sparsity: must be in [0, 1)"),
    ({"sparsity": -0.1}, "sparsity: must be in [0, 1)"),
    ({"warmup_epochs": 12, "train": {"epochs": 12}}, "warmup_epochs: must be less than train.epochs"),
    ({"prune_iterations": 0}, "prune_iterations: must be an integer in [1, 10000]"),
    ({"train": {"epochs": 0}}, "train.epochs:"),
    ({"train": {"lr": -1}}, "train.lr:"),
    ({"train": {"milestones": [0.75, 0.5]}}, "train.milestones:"),
    ({"drive": {"weights": [1, 1]}}, "drive.weights"),
    ({"drive": {"weights": [0, 0, 0]}}, "drive.weights: must be three non-negative numbers"),
    ({"drive": {"combine": "max"}}, "drive.combine:"),
    ({"imp": {"rate": 1.5}}, "imp.rate:"),
    ({"method": "imp", "imp": {"rewind_epoch": 20}}, "imp.rewind_epoch: must be less than train.epochs"),
    ({"bogus": 1}, "bogus: unknown field"),
    ({"prune": {"scope": "per-layer"}}, "prune.scope:"),
    ({"device": "tpu"}, "device: must be auto, cpu, cuda or cuda:N"),
])
def test_each_bad_field_gives_one_line_naming_it(tree, field):
    problems = errors_of(tree)
    assert len(problems) == 1, problems
    assert problems[0].startswith(field.split(":")[0] + ":"), problems
    assert field in problems[0]
    assert "\n" not in problems[0]


def test_dense_ignores_sparsity():
    assert build_config({"method": "dense", "sparsity": 0.9}).sparsity == 0.0


def test_several_bad_fields_give_one_line_each():
    problems = errors_of({"method": "x", "sparsity": 2, "train": {"epochs": -1}})
    assert len(problems) == 3
    assert {p.split(":")[0] for p in problems} == {"method", "sparsity", "train.epochs"}


def test_overrides_parse_yaml_values_with_dotted_keys():
    tree = apply_overrides({"train": {"lr": 0.1}}, ["train.lr=0.01", "drive.weights=[1, 0, 2]",
                                                    "sparsity=0.95", "train.nesterov=true"])
    cfg = build_config(tree)
    assert cfg.train.lr == 0.01 and cfg.args.weights == [1.0, 0.0, 2.0]
    assert cfg.sparsity == 0.95 and cfg.train.nesterov is True
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"sparsity": 0.5}, ["sparsity.x=1"])


def test_yaml_files_are_read_safely(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("method: snip\nsparsity: 0.8\ntrain:\n  epochs: 3\n")
    cfg = load_config(good, ["seed=4"])
    assert (cfg.method, cfg.sparsity, cfg.train.epochs, cfg.seed) == ("snip", 0.8, 3, 4)
    evil = tmp_path / "evil.yaml"
    evil.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(evil)
    with pytest.raises(ConfigError, match="file not found"):
        read_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(tmp_path / "list.yaml")
