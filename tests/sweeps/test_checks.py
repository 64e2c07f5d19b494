"""sweeps.checks: what is refused before Ray starts (the CLI cases are in test_errors.py)."""

import pickle

import pytest

from sweeps.checks import check_trials, load_sweep
from sweeps.cli import UsageError
from sweeps.runtime import check_address
from sweeps.spec import SweepError


def test_every_distinct_problem_once_however_many_trials_share_it():
    sweep = load_sweep(tree={"experiment": {"method": "snip", "device": "cuda", "model_args": {"depth": 2}},
                           "sweep": {"sparsity": [0.5, 0.8, 0.9], "seed": [0, 1]}})
    with pytest.raises(SweepError) as info:
        check_trials(sweep)
    assert info.value.problems == [
        "experiment.device: cuda needs resources.gpu > 0 (Ray hides the GPUs from trials that "
        "reserve none); use auto or cpu",
        "model_args: unknown argument(s) depth for model 'digits_cnn'; allowed: width"]


def test_good_trials_pass_and_name_their_data_sets():
    sweep = load_sweep(tree={"experiment": {"method": "snip"}, "sweep": {"data.val_fraction": [0.0, 0.1]}})
    datasets = check_trials(sweep)
    assert [name for name, _ in datasets] == ["digits", "digits"]


@pytest.mark.parametrize("address,where", [("127.0.0.1:1", "127.0.0.1:1"),
                                            ("ray://127.0.0.1:1", "127.0.0.1:1")])
def test_an_address_that_does_not_answer_is_one_line(address, where):
    with pytest.raises(SweepError, match=rf"^--address: cannot reach {where} within 2 s \("):
        check_address(address, timeout=2)
    check_address("auto")  # Ray finds (or refuses) the local cluster itself


def test_sweep_and_usage_errors_survive_pickling():
    for error in (SweepError(["sweep: a", "name: b"]), UsageError(["--out: c"])):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
