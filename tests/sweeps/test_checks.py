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


@pytest.mark.parametrize("axes,line", [
    ({"train.batch_size": [64, 2000]}, "train.batch_size: 2000 is more than the 1437 training "
     "samples of digits: an epoch would be a single step on all 1437 instead of batches of 2000; "
     "use train.batch_size <= 1437"),
    ({"data.val_fraction": [0.1, 0.97]}, "train.batch_size: 64 is more than the 40 training samples "
     "of digits left after data.val_fraction 0.97 holds out 1397: an epoch would be a single step "
     "on all 40 instead of batches of 64; use train.batch_size <= 40 or a smaller data.val_fraction"),
    ({"train.drop_last": [True], "train.batch_size": [1437, 1438]}, "train.batch_size: 1438 is more "
     "than the 1437 training samples of digits: with train.drop_last every epoch would be empty "
     "(0 steps); use train.batch_size <= 1437"),
])
def test_a_training_set_smaller_than_a_batch_is_refused_for_the_trials_that_have_it(axes, line):
    sweep = load_sweep(tree={"experiment": {"method": "snip"}, "sweep": axes})
    with pytest.raises(SweepError) as info:
        check_trials(sweep)
    assert info.value.problems == [line]


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


def test_a_sweep_without_axes_warns_that_it_is_one_trial(capsys):
    from sweeps.checks import warn_without_axes

    warn_without_axes(load_sweep(tree={"name": "only"}))
    warn_without_axes(load_sweep(tree={"name": "only", "experiment": {"method": "snip"}}))
    warn_without_axes(load_sweep(tree={"name": "only", "sweep": {"seed": [0]}}))  # an axis: quiet
    assert capsys.readouterr().err.splitlines() == [
        "drive-sweep: warning: sweep: no axis given, so it runs one trial, the default experiment "
        "(drive at sparsity 0.9, digits_cnn on digits); add axes under sweep:, e.g. sparsity: [0.8, 0.9]",
        "drive-sweep: warning: sweep: no axis given, so it runs one trial, the experiment config as "
        "it is (snip at sparsity 0.9, digits_cnn on digits); add axes under sweep:, e.g. sparsity: "
        "[0.8, 0.9]"]
