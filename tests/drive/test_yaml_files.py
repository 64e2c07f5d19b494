"""drive.yaml_files: safe_load's loader refusing duplicate keys; errors with their line."""

import pytest
import yaml

from drive import yaml_files
from drive.config import read_yaml
from drive.errors import ConfigError


def test_a_key_given_twice_is_refused_with_both_lines():
    with pytest.raises(yaml.YAMLError) as e:
        yaml_files.load("train:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n")
    assert yaml_files.describe_yaml_error(e.value) == (
        "line 4, column 3: 'lr' is given twice (first on line 2); give each field once")


def test_merge_keys_may_be_overridden_and_python_tags_stay_refused():
    text = "base: &b {epochs: 1, lr: 0.1}\ntrain: {<<: *b, lr: 0.2}\n"
    assert yaml_files.load(text)["train"] == {"epochs": 1, "lr": 0.2}
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml_files.load("m: !!python/object/apply:os.system ['true']\n")


def test_read_yaml_names_the_problem_of_a_file(tmp_path):
    latin1 = tmp_path / "l.yaml"
    latin1.write_bytes(b"method: snip\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 0xe9 on line 2\)"):
        read_yaml(latin1)
    listed = tmp_path / "list.yaml"
    listed.write_text("- method: drive\n")
    with pytest.raises(ConfigError, match="must hold a mapping of fields, not a list"):
        read_yaml(listed)
