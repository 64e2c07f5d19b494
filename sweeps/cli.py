"""drive-sweep: run one experiment, run or resume a sweep, write reports.

Bad input (config fields, files, paths) ends with one "drive-sweep: error: field: ..." line per
problem on stderr and exit code 2, before anything is written. Ctrl-C (SIGINT) and SIGTERM end
every command with one line and exit code 130 or 143 (sweeps.signals): a sweep stops gracefully,
ends every record and says how to resume it. (Plain text: argparse prints it as --help.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweeps.usage import USAGE_ERROR, Parser, UsageError, batches, check_writable, input_errors, number

#: What the line of a command that a signal stopped before its work started adds.
BEFORE_WORK = {"run": " before the sweep started; nothing ran",
               "demo": " before the sweep started; nothing ran",
               "resume": " before the sweep continued; nothing ran"}

#: drive-sweep prune flags that set a config field: flag dest -> dotted field.
PRUNE_FLAGS = {
    "method": "method", "sparsity": "sparsity", "model": "model", "dataset": "dataset",
    "epochs": "train.epochs", "warmup_epochs": "warmup_epochs",
    "prune_iterations": "prune_iterations", "seed": "seed", "device": "device",
}


# ---- prune ------------------------------------------------------------------------------------


def prune_config(args: argparse.Namespace):
    """The experiment config from ``--config``, the flags and ``--set`` overrides (in that order)."""
    from drive.config import ExperimentConfig, apply_overrides, build_config, read_yaml

    tree = read_yaml(args.config, "--config") if args.config else {}
    if {"experiment", "sweep"} & set(tree) and not set(tree) & set(ExperimentConfig.model_fields):
        raise UsageError(f"--config: {args.config} is a sweep file (it has experiment:/sweep:); run "
                         f"it with `drive-sweep run {args.config}`, or give an experiment config")
    flags = [f"{field}={getattr(args, dest)}" for dest, field in PRUNE_FLAGS.items()
             if getattr(args, dest) is not None]
    return build_config(apply_overrides(tree, flags + (args.set or [])))


def cmd_prune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from drive.config import DEFAULT_WARMUP
    from drive.errors import ScoreError
    from drive.plan import make_plan, total_epochs
    from drive.record import local_sink
    from drive.run import run
    from drive.state import FileCheckpoints

    cfg = prune_config(args)
    if "warmup_epochs" not in cfg.model_fields_set and cfg.warmup_epochs != DEFAULT_WARMUP:
        # only drive.config.default_warmup moves an unset warm-up off the default
        print(f"drive-sweep: note: warmup_epochs: {cfg.warmup_epochs} (the default "
              f"{DEFAULT_WARMUP}, shortened to fit train.epochs {cfg.train.epochs})", file=sys.stderr)
    if args.out:
        check_writable(Path(args.out), "--out")
    if args.checkpoint:
        check_writable(Path(args.checkpoint), "--checkpoint")
        if args.out and Path(args.out).resolve() == Path(args.checkpoint).resolve():
            raise UsageError(f"--checkpoint: {args.checkpoint} is also --out; the record and the "
                             "checkpoint need two files")
    bars = []  # shown from the first epoch on: bad input before it is one line, no bar

    def on_progress(p) -> None:
        m = p.metrics
        if not bars:
            bars.append(tqdm(total=total_epochs(make_plan(cfg)), unit="epoch", disable=args.quiet,
                             desc=f"{cfg.method} s={cfg.sparsity:g}", file=sys.stderr))
        bars[0].update(m["epochs_done"] - bars[0].n)
        bars[0].set_postfix(phase=m["phase"], density=f"{m['density']:.3f}",
                            acc=f"{m['test_acc']:.3f}" if m.get("test_acc") is not None else "-")

    try:
        outcome = run(cfg, sink=local_sink(args.out) if args.out else None,
                      checkpoints=FileCheckpoints(args.checkpoint) if args.checkpoint else None,
                      on_progress=on_progress)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the record says so; no traceback
        _close(bars)
        again = "; run the same command again to continue from --checkpoint" if args.checkpoint else ""
        return _interrupted(e, again)
    except ScoreError as e:  # a known end of a method (NaN scores): one line, the record says errored
        _close(bars)
        print(f"drive-sweep: error: {e}", file=sys.stderr)
        return 1
    finally:
        _close(bars)
    metrics = outcome.metrics
    print(format_metrics(metrics))
    if args.out:
        print(f"record written to {args.out}" if outcome.ran else
              f"{args.out} already holds this run's end (--checkpoint): nothing to run")
    return 0 if metrics["status"] == "finished" else 1


def _close(bars: list) -> None:
    for bar in bars:
        bar.close()


def format_metrics(m: dict[str, Any]) -> str:
    """A short human summary of one experiment's metrics."""
    acc = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    lines = [
        f"method {m['method']}  model {m['model']}  dataset {m['dataset']}  seed {m['seed']}  "
        f"status {m['status']}" + (f" ({m['reason']})" if m.get("reason") else ""),
        f"sparsity target {m['sparsity']:g}  achieved density {m['density']:.4f} "
        f"({m['params_remaining']}/{m['params_prunable']} prunable weights kept)",
        f"test accuracy final {acc(m['test_acc'])}  best {acc(m['best_test_acc'])}",
        f"prune time {m['prune_time_s']:.2f}s ({m['prune_samples']} sample passes)  "
        f"train time {m['train_time_s']:.2f}s  total {m['total_time_s']:.2f}s  "
        f"wall {m['wall_time_s']:.2f}s",
    ]
    if m["collapsed_layers"]:
        lines.append(f"WARNING collapsed layers (no weight left): {', '.join(m['collapsed_layers'])}")
    return "\n".join(lines)


# ---- sweeps ------------------------------------------------------------------------------------


def sweep_file(name: str) -> str:
    """A sweep file path, or the name of a shipped one (``demo``, ``cifar10_resnet18``, ...)."""
    from importlib import resources

    if Path(name).is_file() or "/" in name:
        return name
    shipped = resources.files("sweeps") / "configs" / f"{name.removesuffix('.yaml')}.yaml"
    return str(shipped) if shipped.is_file() else name


def cmd_run(args: argparse.Namespace) -> int:
    from sweeps.checks import load_sweep
    from sweeps.confirm import confirm_size

    sweep = load_sweep(sweep_file(args.sweep), list(args.set or []),
                       fields={"storage": args.storage, "name": args.name})
    if args.dry_run:  # no Ray, nothing written (sweeps.dryrun)
        from sweeps.dryrun import check_target, describe

        check_target(sweep.spec)
        print(describe(sweep))
        return 0
    confirm_size(sweep.total, yes=args.yes)
    from sweeps.launch import run_sweep

    return finish_sweep(run_sweep(sweep, address=args.address))


def cmd_resume(args: argparse.Namespace) -> int:
    from sweeps.launch import resume_sweep

    return finish_sweep(resume_sweep(args.experiment_dir, address=args.address))


def finish_sweep(path: str) -> int:
    """Write the results files and print the summary; exit 1 when a trial errored, was
    interrupted or never started (finished, diverged and ASHA-stopped trials are the plan). A
    sweep a signal stopped prints one line instead and exits 128 + the signal. (Ray shuts down
    as the process exits; its shutdown resets SIGTERM's handler, so it is not done here.)"""
    from sweeps import signals
    from sweeps.launch import expected_trials
    from sweeps.results import exit_code, summarize, trial_counts, write_results

    frame = write_results(path)
    expected = expected_trials(path)
    signum = signals.received()
    if signum is not None:
        print(signals.stopped_line(signum, trial_counts(frame, expected), path), file=sys.stderr)
        return 128 + signum
    print(summarize(frame, expected))
    print(f"results: {path}/results.csv and results.parquet")
    return exit_code(trial_counts(frame, expected))


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import write_report
    from analysis.results import ResultsWarning
    from sweeps.results import never_started
    from sweeps.storage import exists, load_results

    for path in args.experiment_dirs:
        if not exists(path):
            raise UsageError(f"EXPERIMENT_DIR: {path} does not exist")
    if args.sparsity is not None and not 0 <= args.sparsity < 1:
        raise UsageError(f"--sparsity: must be in [0, 1) (a share of weights removed, e.g. 0.9), "
                         f"got {args.sparsity:g}")
    check_writable(Path(args.out), "--out", folder=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResultsWarning)
        frame = load_results(args.experiment_dirs)  # local folders, or straight from s3:// / gs://
    unreadable = []
    for w in caught:  # a trial record that cannot be read: one line each, the report goes on
        if issubclass(w.category, ResultsWarning):
            print(f"drive-sweep: warning: {w.message}", file=sys.stderr)
            unreadable.append(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    levels = sorted(set(frame["sparsity"].dropna()) - {0.0})
    if args.sparsity is not None and levels and round(args.sparsity, 6) not in levels:
        raise UsageError(f"--sparsity: no trial reports sparsity {args.sparsity:g}; the levels are "
                         f"{', '.join(f'{s:g}' for s in levels)}")
    report = write_report(args.experiment_dirs, args.out, sparsity=args.sparsity, frame=frame,
                          variants=args.variant or [],
                          never_started=never_started(args.experiment_dirs, frame),
                          unreadable=unreadable)
    print(f"report written to {report}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from analysis.report import write_report
    from sweeps.checks import load_sweep
    from sweeps.launch import run_sweep

    demo = sweep_file("demo")
    name = args.name or time.strftime("demo-%Y%m%d-%H%M%S")
    sweep = load_sweep(str(demo), list(args.set or []), fields={"storage": args.storage, "name": name})
    if args.out:  # before the sweep, not after its minutes of training
        check_writable(Path(args.out), "--out", folder=True)
    path = run_sweep(sweep)
    status = finish_sweep(path)
    if status > 128:  # stopped by a signal: the report waits for the resumed sweep
        return status
    out = Path(args.out or f"{path}/report")
    print(f"report written to {write_report([path], out)}")
    return status


def cmd_bench_model(args: argparse.Namespace) -> int:
    import json

    from drive.measure import format_measurement, measure

    path = Path(args.path)
    if not path.is_file():
        raise UsageError(f"PATH: {path} is not a file; give a checkpoint (prune --checkpoint, a "
                         "trial's checkpoint_*/state.pt) or a record (prune --out, metrics.jsonl)")
    if args.out:
        check_writable(Path(args.out), "--out")
    result = measure(path, tuple(args.batch), repeat=args.repeat, device=args.device)
    print(format_measurement(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"measurement written to {args.out}")
    return 0




# ---- parser -----------------------------------------------------------------------------------


def method_names() -> list[str]:
    from drive.method import METHODS

    return METHODS.in_order()







def build_parser() -> argparse.ArgumentParser:
    from sweeps.confirm import CONFIRM_ABOVE
    from sweeps.version import VersionAction

    parser = Parser(prog="drive-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=VersionAction,
                        help="the package version and git commit, then exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("prune", help="run one experiment (no Ray)")
    p.add_argument("--config", help="experiment YAML file")
    p.add_argument("--method", help="a method of the registry (drive.method): "
                   f"{', '.join(method_names())}; or package.module:NAME")
    p.add_argument("--sparsity", help="target sparsity in [0, 1)")
    p.add_argument("--model", help="model registry name or package.module:factory")
    p.add_argument("--dataset", help="data set registry name or package.module:factory")
    p.add_argument("--epochs", help="training epochs (train.epochs)")
    p.add_argument("--warmup-epochs", dest="warmup_epochs", help="DRIVE's dense warm-up epochs")
    p.add_argument("--prune-iterations", dest="prune_iterations", help="pruning iterations T")
    p.add_argument("--seed", help="random seed")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config field by dotted name")
    p.add_argument("--out", help="write the record (JSON Lines, docs/results.md) to this file as it runs")
    p.add_argument("--checkpoint", help="save the resumable state here every epoch; resume from it if present")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_prune)

    p = sub.add_parser("run", help="run a sweep with Ray Tune (embedded local Ray by default)")
    p.add_argument("sweep", help="sweep YAML file, or the name of a shipped one (demo, cifar10_resnet18, ...)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a sweep-file field by dotted name (e.g. experiment.train.epochs=2)")
    p.add_argument("--address", help="attach to a Ray cluster (e.g. auto under 'ray job submit')")
    p.add_argument("--storage", help="results root: local folder, NFS path, s3://..., gs://...")
    p.add_argument("--name", help="experiment name (folder under the storage path)")
    p.add_argument("--dry-run", action="store_true", help="check the sweep, list its trials and "
                   "their expected cost, and exit: no Ray, nothing written")
    p.add_argument("--yes", action="store_true", help=f"start a sweep of more than "
                   f"{CONFIRM_ABOVE:,} trials without asking")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("resume", help="continue a stopped sweep (finished trials are not re-run)")
    p.add_argument("experiment_dir", help="the sweep's folder, <storage>/<name>")
    p.add_argument("--address", help="attach to a Ray cluster")
    p.set_defaults(handler=cmd_resume)

    p = sub.add_parser("report", help="figures, report.md and LaTeX tables from experiment folders")
    p.add_argument("experiment_dirs", nargs="+", metavar="EXPERIMENT_DIR")
    p.add_argument("--out", required=True, help="folder for the report")
    p.add_argument("--sparsity", type=number, help="sparsity for the per-layer and ablation figures")
    p.add_argument("--variant", action="append", metavar="METHOD:FIELD=VALUE",
                   help="the main line of a method with several variants, e.g. drive:warmup_epochs=3 "
                        "(default: the variant closest to the method's default settings)")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("bench-model", help="time a pruned network's forward pass, dense-masked vs "
                       "sparse execution, beside its theoretical FLOPs")
    p.add_argument("path", metavar="PATH", help="a checkpoint (prune --checkpoint, checkpoint_*/state.pt)"
                   " or a record (prune --out, metrics.jsonl: random masks of its layer densities)")
    p.add_argument("--batch", type=batches, default=[1, 256], help="batch sizes, e.g. 1,256")
    p.add_argument("--repeat", type=int, default=5, help="alternating timing rounds per case")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", help="also write the measurement as JSON (the report shows it when it "
                   "lies in an experiment folder as inference.json)")
    p.set_defaults(handler=cmd_bench_model)

    p = sub.add_parser("demo", help="run the demo sweep on digits and write its report")
    p.add_argument("--storage", default="./results", help="results root (default ./results)")
    p.add_argument("--name", help="experiment name (default: demo-<date>-<time>)")
    p.add_argument("--out", help="report folder (default <storage>/<name>/report)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a demo.yaml field")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    # `package.module:NAME` in the current folder imports here as it does in the trials (whose
    # PYTHONPATH starts with the launch folder) and under `python -m`
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    from sweeps.signals import SignalGuard

    try:
        with SignalGuard():
            return handler(args)
    except input_errors() as e:
        for line in str(e).splitlines() or [type(e).__name__]:
            print(f"drive-sweep: error: {line}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt as e:  # before any work started (a sweep's checks, Ray starting)
        return _interrupted(e, BEFORE_WORK.get(args.command, ""))


def _interrupted(error: KeyboardInterrupt, then: str) -> int:
    """The one line of a command that Ctrl-C or a signal stopped; its exit code (130, 143)."""
    from drive.errors import Interrupted, signal_name

    stop = error if isinstance(error, Interrupted) else Interrupted()
    print(f"drive-sweep: interrupted by {signal_name(stop.signum)}{then}", file=sys.stderr)
    return stop.exit_code


if __name__ == "__main__":
    sys.exit(main())
