"""Resume: a run killed at any step and continued with `--resume` ends bit-identical to one that
was never interrupted (mask, head, metrics and step history)."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import FIXTURE_GLUE, Killed, assert_one_line_error, crash_at, only_run_dir, pretend_disk_free, read_metrics, run_cli, tiny_overrides
import prune_cli
from prune_cli import checkpointing, rundir, stopping


def resumed_at(run_dir: Path) -> dict:
    """Where a finished run's record says it was resumed from (phase and step; the seconds it carried aside)."""
    resumed = read_metrics(run_dir)["resumed_from"]
    return {key: resumed[key] for key in ("phase", "steps_done")}


def _resumes_as_if_written_before(run_dir: Path, key: str) -> None:
    """Drop `key` from the stopped run's checkpoint identity, as a prune-cli before that key wrote
    it (`checkpointing.LATER_IDENTITY_KEYS`), and check that the run resumes."""
    state = run_dir / rundir.CHECKPOINT_STATE
    payload = torch.load(state, weights_only=True)
    del payload["identity"][key]
    torch.save(payload, state)
    result = run_cli("adapt", "--resume", str(run_dir))
    assert result.exit_code == 0, result.output


def _same_run(a: Path, b: Path) -> None:
    for name in (rundir.MASK, rundir.HEAD, rundir.ENCODER):
        assert (a / name).exists() == (b / name).exists(), name
        if (a / name).exists():
            assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"
    ma, mb = read_metrics(a), read_metrics(b)
    assert ma["metrics"] == mb["metrics"]
    assert ma["method_details"] == mb["method_details"]
    history = [[{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (d / rundir.HISTORY).read_text().splitlines()] for d in (a, b)]
    assert history[0] == history[1]


# (method, extra overrides, sparsity, steps, kill after this many steps over all phases, phase it
# dies in); adapt-by-pruning prunes over the first quarter of its budget here, then trains the
# head; with the warm-up, the head trains alone for 4 steps and pruning runs from step 4 to 10.
QUICK_PRUNING = ["method.prune_fraction=0.25"]
WARMUP = [*QUICK_PRUNING, "method.head_warmup_fraction=0.1"]
HOLD = [*QUICK_PRUNING, "method.hold_fraction=0.25"]  # s is held from about step 10 to step 20
HOLD_ALPHA = [*HOLD, "method.hold_theta_lr=1e-5"]  # and theta learns at its own rate while held
# fp16's loss scale is run state too; the test makes it double every step (and halve on overflow),
# so a resume that started again from the initial scale would round differently and end elsewhere
IN_FP16 = "trainer.precision=fp16"
FP16 = [*QUICK_PRUNING, IN_FP16]
SCORED = [*QUICK_PRUNING, "trainer.eval_every=5"]  # the dev figures along the run: the resumed history holds them all
CASES = [
    ("adapt_by_pruning", QUICK_PRUNING, "0.5", 40, 7, "prune"),
    ("adapt_by_pruning", QUICK_PRUNING, "0.5", 40, 33, "head"),
    ("adapt_by_pruning", WARMUP, "0.5", 40, 3, "warmup"),
    ("adapt_by_pruning", WARMUP, "0.5", 40, 7, "prune"),
    ("adapt_by_pruning", HOLD, "0.5", 40, 16, "prune"),
    ("adapt_by_pruning", HOLD_ALPHA, "0.5", 40, 16, "prune"),
    ("adapt_by_pruning", FP16, "0.5", 40, 7, "prune"),
    ("adapt_by_pruning", FP16, "0.5", 40, 33, "head"),
    ("adapt_by_pruning", SCORED, "0.5", 40, 33, "head"),
    ("finetune", [IN_FP16], "0.0", 12, 7, "finetune"),
    ("gmp", [], "0.5", 12, 17, "head"),
    ("imp", [], "0.5", 16, 9, "imp round 3/4"),
    ("finetune", [], "0.0", 12, 7, "finetune"),
    ("random", [], "0.5", 12, 8, "head"),
]


@pytest.mark.parametrize(("method", "extra", "sparsity", "steps", "kill_at", "phase"), CASES,
                         ids=[f"{c[0]}{'-warmup' if c[1] is WARMUP else '-hold' if c[1] is HOLD else '-hold-alpha' if c[1] is HOLD_ALPHA else ''}"
                              f"{'-fp16' if IN_FP16 in c[1] else ''}{'-scored' if c[1] is SCORED else ''}-{c[5]}" for c in CASES])
def test_killed_run_resumes_bit_identical(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                          method: str, extra: list[str], sparsity: str, steps: int, kill_at: int, phase: str):
    if IN_FP16 in extra:
        monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, growth_interval=1))
    common = [*extra, f"method={method}", f"sparsity={sparsity}", "checkpoint.every_steps=3", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=steps)]
    assert run_cli("adapt", *common, "hydra.run.dir=uninterrupted").exit_code == 0

    with monkeypatch.context() as patch:
        crash_at(patch, kill_at)
        with pytest.raises(Killed, match=f"killed in {phase}"):
            run_cli("adapt", *common, "hydra.run.dir=killed")
    killed = in_tmp / "killed"
    assert not (killed / rundir.METRICS).exists()
    assert (killed / rundir.CHECKPOINT_STATE).exists()

    result = run_cli("adapt", "--resume", str(killed))
    assert result.exit_code == 0, result.output
    _same_run(in_tmp / "uninterrupted", killed)
    assert read_metrics(killed)["resumed_from"]["steps_done"] > 0
    assert not (killed / rundir.CHECKPOINT).exists(), "a clean finish removes the checkpoint"


def test_imps_checkpoint_holds_earlier_rounds_at_one_bit_per_weight_and_an_older_one_resumes(in_tmp: Path, tiny_model_dir: Path,
                                                                                            monkeypatch: pytest.MonkeyPatch):
    """imp keeps each earlier round's mask to the run's end and in every checkpoint: packed, eight
    weights to the byte on the host, where it held a byte per weight on the run's device (BERT-base
    to s = 0.9: 1.09 GB in GPU memory and in each checkpoint, now 136 MB). A checkpoint written before,
    with the rounds' masks as booleans, still resumes, and both end as the uninterrupted run: the
    same mask, head and history, and the same earlier rounds' files, byte for byte."""
    from prune_cli import mask_format

    common = ["method=imp", "sparsity=0.5", "checkpoint.every_steps=3", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=16)]
    assert run_cli("adapt", *common, "hydra.run.dir=uninterrupted").exit_code == 0
    with monkeypatch.context() as patch:
        crash_at(patch, 11)  # round 3's third step, where its checkpoint is saved: two earlier rounds in it
        with pytest.raises(Killed, match="killed in imp round 3/4 at 3"):
            run_cli("adapt", *common, "hydra.run.dir=packed")
    state_file = in_tmp / "packed" / rundir.CHECKPOINT_STATE
    payload = torch.load(state_file, weights_only=True)
    earlier = payload["state"]["carry"]["earlier"]
    final = mask_format.read_mask(in_tmp / "uninterrupted" / rundir.MASK).masks
    assert [level for level, _ in earlier] == pytest.approx([0.2, 0.36])
    for _, packed in earlier:
        assert {n: (b.dtype, b.device.type, b.numel()) for n, b in packed.items()} == {
            n: (torch.uint8, "cpu", (m.numel() + 7) // 8) for n, m in final.items()}

    shutil.copytree(in_tmp / "packed", in_tmp / "older")  # as the prune-cli before packing wrote it
    shapes = {n: m.shape for n, m in final.items()}
    payload["state"]["carry"]["earlier"] = [(level, mask_format.unpack_masks(packed, shapes)) for level, packed in earlier]
    torch.save(payload, in_tmp / "older" / rundir.CHECKPOINT_STATE)
    for folder in ("packed", "older"):
        result = run_cli("adapt", "--resume", folder)
        assert result.exit_code == 0, result.output
        _same_run(in_tmp / "uninterrupted", in_tmp / folder)
        rounds = sorted(p.relative_to(in_tmp / folder) for p in (in_tmp / folder / "masks").iterdir())
        assert rounds == sorted(p.relative_to(in_tmp / "uninterrupted") for p in (in_tmp / "uninterrupted" / "masks").iterdir())
        assert len(rounds) == 3 and all((in_tmp / folder / p).read_bytes() == (in_tmp / "uninterrupted" / p).read_bytes() for p in rounds)


def test_a_resumed_runs_time_counts_the_steps_before_its_checkpoint(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A run slow before it was killed (0.2 s a step) and quick after: its step records' seconds go
    on from the checkpoint's, and its train_seconds covers both parts, so `report` counts it in the
    cost table. Each attempt's clock started at 0: the resumed run's seconds fell back at the resume
    and its train_seconds timed the tail alone. A checkpoint written before checkpoints kept the
    clock still resumes, its run timed from the resume and left out of the cost."""
    from prune_cli import report

    common = ["checkpoint.every_steps=3", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=12)]
    slow_steps = 6  # the checkpoint is saved after step 6; the run dies after step 7
    for folder in ("resumed", "older"):
        with monkeypatch.context() as patch:
            original = checkpointing.Checkpointer.maybe_save
            patch.setattr(checkpointing.Checkpointer, "maybe_save",
                          lambda self, *args: (time.sleep(0.2), original(self, *args)))
            crash_at(patch, slow_steps + 1)
            with pytest.raises(Killed):
                run_cli("adapt", *common, f"hydra.run.dir={folder}")

    assert run_cli("adapt", "--resume", "resumed").exit_code == 0
    metrics = read_metrics(in_tmp / "resumed")
    carried = metrics["resumed_from"]["seconds_before"]
    seconds = [json.loads(line)["seconds"] for line in (in_tmp / "resumed" / rundir.HISTORY).read_text().splitlines()]
    assert carried >= 0.2 * slow_steps and seconds[slow_steps - 1] <= carried <= seconds[slow_steps]
    assert seconds == sorted(seconds) and len(seconds) == 12
    assert metrics["train_seconds"] >= carried
    [group], _, _ = report.build(in_tmp / "resumed", out_dir=in_tmp / "report")
    assert group.train_seconds == metrics["train_seconds"], "the resumed run is timed whole, so it is in the cost"

    state = in_tmp / "older" / rundir.CHECKPOINT_STATE
    payload = torch.load(state, weights_only=True)
    del payload["tracked"]["clock"]  # as a prune-cli before the clock wrote it
    torch.save(payload, state)
    assert run_cli("adapt", "--resume", "older").exit_code == 0
    older = read_metrics(in_tmp / "older")
    assert "seconds_before" not in older["resumed_from"] and older["train_seconds"] < 0.2 * slow_steps
    assert not report.timed_whole(older) and report.timed_whole({**older, "resumed_from": None})


def test_a_checkpoint_from_before_the_tokenizer_was_recorded_still_resumes_and_a_changed_tokenizer_does_not(
        in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A run stopped under the prune-cli before `tokenizer_hash` joined a checkpoint's identity resumes
    under this one; a run whose base folder was given another tokenizer meanwhile is refused, as
    other base weights are."""
    from transformers import BertTokenizerFast

    model = shutil.copytree(tiny_model_dir, in_tmp / "model")
    common = ["checkpoint.every_steps=3", "trainer.epochs=null", *tiny_overrides(model, steps=12)]
    for folder in ("older", "retokenized"):
        with monkeypatch.context() as patch:
            crash_at(patch, 7)
            with pytest.raises(Killed):
                run_cli("adapt", *common, f"hydra.run.dir={folder}")
    _resumes_as_if_written_before(in_tmp / "older", "tokenizer_hash")

    BertTokenizerFast.from_pretrained(tiny_model_dir, do_lower_case=False).save_pretrained(model)
    assert_one_line_error(run_cli("adapt", "--resume", str(in_tmp / "retokenized")), "was written with tokenizer_hash=",
                          "the checkpoint belongs to another setup")


def test_a_stopped_run_whose_training_rows_changed_is_not_resumed_on_them(in_tmp: Path, tiny_model_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """The checkpoint's identity counted the training rows but did not read them: a train file edited
    while a run was stopped (a label corrected, the same number of rows) was resumed on, and the run
    recorded a result trained half on one data set and half on another. A checkpoint written before
    the rows were fingerprinted still resumes."""
    glue = Path(shutil.copytree(FIXTURE_GLUE, in_tmp / "glue"))
    common = ["checkpoint.every_steps=3", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, f"data.dir={glue}", steps=12)]
    for folder in ("edited", "older"):
        with monkeypatch.context() as patch:
            crash_at(patch, 7)
            with pytest.raises(Killed):
                run_cli("adapt", *common, f"hydra.run.dir={folder}")
    train = glue / "SST-2" / "train.tsv"
    original = train.read_text()
    header, first, *rest = original.splitlines()
    text, label = first.rsplit("\t", 1)
    train.write_text("\n".join([header, f"{text}\t{1 - int(label)}", *rest]) + "\n")
    from conftest import folder_snapshot

    before = folder_snapshot(in_tmp / "edited")
    assert_one_line_error(run_cli("adapt", "--resume", str(in_tmp / "edited")), "cannot be resumed: the training rows have changed since the run stopped",
                          "put the data back as it was to resume, or start the run anew")
    edited = train.read_text()
    train.write_text(f"{edited}{text}\t{label}\n")  # a row added too: named as the rows' change, not as another count of examples
    assert_one_line_error(run_cli("adapt", "--resume", str(in_tmp / "edited")), "cannot be resumed: the training rows have changed since the run stopped")
    train.write_text(edited)
    assert folder_snapshot(in_tmp / "edited") == before
    _resumes_as_if_written_before(in_tmp / "older", "train_rows_sha256")
    train.write_text(original)
    result = run_cli("adapt", "--resume", str(in_tmp / "edited"))
    assert result.exit_code == 0, result.output
    trained_on = read_metrics(in_tmp / "edited")["trained_on"]
    assert trained_on["rows"] == len(rest) + 1 and trained_on["source"] == str(train)


def test_a_stopped_run_whose_model_folder_moved_says_how_to_resume_and_resumes_once_it_is_back(in_tmp: Path, tiny_model_dir: Path,
                                                                                                 monkeypatch: pytest.MonkeyPatch):
    """`--resume` takes no options (a run goes on with the config it was made with), yet its error for a
    model folder moved away said "pass a Hugging Face model name or a local folder"."""
    from conftest import folder_snapshot

    model = shutil.copytree(tiny_model_dir, in_tmp / "model")
    with monkeypatch.context() as patch:
        crash_at(patch, 7)
        with pytest.raises(Killed):
            run_cli("adapt", "checkpoint.every_steps=3", "trainer.epochs=null", *tiny_overrides(model, steps=12), "hydra.run.dir=stopped")
    model.rename(in_tmp / "moved")
    before = folder_snapshot(in_tmp / "stopped")
    assert_one_line_error(run_cli("adapt", "--resume", str(in_tmp / "stopped")), f"was made on the model folder {model}, which is not there now",
                          f"link it there (ln -s <where it is now> {model}), to resume")
    assert folder_snapshot(in_tmp / "stopped") == before, "the refused resume left the run as it was"
    model.symlink_to(in_tmp / "moved")
    result = run_cli("adapt", "--resume", str(in_tmp / "stopped"))
    assert result.exit_code == 0, result.output
    assert read_metrics(in_tmp / "stopped")["resumed_from"]["steps_done"] > 0


def test_a_sweep_whose_model_folder_moved_says_how_to_continue_it(in_tmp: Path, tiny_model_dir: Path):
    """A continued sweep goes on with the overrides it was launched with, yet a model folder moved away
    was answered as a new run's typo: "pass a Hugging Face model name or a local folder"."""
    from conftest import folder_snapshot

    model = shutil.copytree(tiny_model_dir, in_tmp / "model")
    assert run_cli("adapt", "-m", "sparsity=0.3,0.5", *tiny_overrides(model), "hydra.sweep.dir=sweep").exit_code == 0
    shutil.rmtree(sorted((in_tmp / "sweep").rglob("metrics.json"))[1].parent)  # a job still to run
    model.rename(in_tmp / "moved")
    before = folder_snapshot(in_tmp / "sweep")
    assert_one_line_error(run_cli("adapt", "--resume", str(in_tmp / "sweep")), f"was made on the model folder {model}, which is not there now",
                          "to continue the sweep")
    assert folder_snapshot(in_tmp / "sweep") == before
    (in_tmp / "moved").rename(model)
    result = run_cli("adapt", "--resume", str(in_tmp / "sweep"))
    assert result.exit_code == 0, result.output
    assert len(list((in_tmp / "sweep").rglob("metrics.json"))) == 2


def test_a_sweep_whose_model_an_experiment_file_named_moved_says_how_to_continue_it(in_tmp: Path, tiny_model_dir: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch):
    """The model of a continued sweep may come from a file, not an override: a user's experiment
    (or model option) names it. Reading only the overrides missed it, and the moved folder was
    answered as a new run's typo ("does not exist; pass a Hugging Face model name or a local folder")."""
    from conftest import folder_snapshot

    model = shutil.copytree(tiny_model_dir, in_tmp / "model")
    own = in_tmp / "own_configs"
    (own / "experiment").mkdir(parents=True)
    (own / "experiment" / "on_my_model.yaml").write_text(f"# @package _global_\nmodel:\n  name_or_path: {model}\n")
    monkeypatch.setenv("PRUNE_CLI_CONFIG_PATH", str(own))
    overrides = [o for o in tiny_overrides(model) if not o.startswith("model.name_or_path=")]
    assert run_cli("adapt", "-m", "+experiment=on_my_model", "sparsity=0.3,0.5", *overrides, "hydra.sweep.dir=sweep").exit_code == 0
    shutil.rmtree(sorted((in_tmp / "sweep").rglob("metrics.json"))[1].parent)  # a job still to run
    model.rename(in_tmp / "moved")
    before = folder_snapshot(in_tmp / "sweep")
    result = run_cli("adapt", "--resume", str(in_tmp / "sweep"))
    assert_one_line_error(result, f"was made on the model folder {model}, which is not there now", "to continue the sweep",
                          "no job was run again")
    assert "no job has started" not in result.output, "two of the sweep's jobs had run"
    assert folder_snapshot(in_tmp / "sweep") == before
    (in_tmp / "moved").rename(model)
    result = run_cli("adapt", "--resume", str(in_tmp / "sweep"))
    assert result.exit_code == 0, result.output
    assert len(list((in_tmp / "sweep").rglob("metrics.json"))) == 2


def test_a_sweep_whose_experiment_grid_was_edited_is_not_continued_as_another_sweep(in_tmp: Path, tiny_model_dir: Path,
                                                                                     monkeypatch: pytest.MonkeyPatch):
    """The continued sweep replays its recorded command line, but read an experiment's grid from
    the file again: `sparsity: 0.3,0.5` edited to `0.3,0.4,0.5` made three jobs where two had
    been launched (the new one ran), and the one at 0.5 became job 2, in a folder other than the
    one it was launched into. Continued without the user's config folder, it says which folder
    it was launched with."""
    from conftest import folder_snapshot

    own = in_tmp / "own_configs"
    (own / "experiment").mkdir(parents=True)
    grid = own / "experiment" / "my_grid.yaml"
    grid.write_text("# @package _global_\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n      sparsity: 0.3,0.5\n")
    monkeypatch.setenv("PRUNE_CLI_CONFIG_PATH", str(own))
    assert run_cli("adapt", "+experiment=my_grid", *tiny_overrides(tiny_model_dir), "hydra.sweep.dir=sweep").exit_code == 0
    shutil.rmtree(sorted((in_tmp / "sweep").rglob("metrics.json"))[1].parent)  # a job still to run
    grid.write_text(grid.read_text().replace("0.3,0.5", "0.3,0.4,0.5"))
    before = folder_snapshot(in_tmp / "sweep")
    for dry_run in ([], ["--dry-run"]):
        result = run_cli("adapt", "--resume", str(in_tmp / "sweep"), *dry_run)
        assert_one_line_error(result, "hydra.sweeper.params is now {'sparsity': '0.3,0.4,0.5'}, and was {'sparsity': '0.3,0.5'} when the "
                              "sweep in", "put the file back as it was, or launch a new sweep for the new grid")
        assert folder_snapshot(in_tmp / "sweep") == before
    grid.write_text(grid.read_text().replace("0.3,0.4,0.5", "0.3,0.5"))
    # continued in a new shell without the user's config folder: "unknown experiment" alone did not say why
    monkeypatch.delenv("PRUNE_CLI_CONFIG_PATH")
    result = run_cli("adapt", "--resume", str(in_tmp / "sweep"))
    assert_one_line_error(result, "unknown experiment 'my_grid'", f"the sweep was launched with PRUNE_CLI_CONFIG_PATH={own}, and it is "
                          "unset now: set it as it was to continue the sweep")
    monkeypatch.setenv("PRUNE_CLI_CONFIG_PATH", str(own))
    result = run_cli("adapt", "--resume", str(in_tmp / "sweep"))
    assert result.exit_code == 0, result.output
    assert len(list((in_tmp / "sweep").rglob("metrics.json"))) == 2 and len(rundir.runs_in(in_tmp / "sweep")) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU, where a GPU run cannot go on")
def test_a_gpu_run_or_sweep_stopped_and_resumed_without_a_gpu_is_told_where_it_can_go_on(in_tmp: Path, tiny_model_dir: Path):
    """`--resume` takes no options, yet a run or sweep made with trainer.device=cuda and resumed on
    a machine without one was told to set trainer.device=... or --device, which it refuses."""
    overrides = tiny_overrides(tiny_model_dir, "checkpoint.every_steps=2", "checkpoint.keep=true", steps=4)
    assert run_cli("adapt", *overrides, "hydra.run.dir=stopped").exit_code == 0
    (in_tmp / "stopped" / rundir.METRICS).unlink()
    config = in_tmp / "stopped" / rundir.CONFIG
    config.write_text(config.read_text().replace("device: cpu", "device: cuda"))  # as if made on a GPU machine
    for args in (["--resume", "stopped"], ["--resume", "stopped", "--dry-run"]):
        result = run_cli("adapt", *args)
        assert_one_line_error(result, "trainer.device=cuda but no CUDA GPU is visible; resume stopped on a machine with that GPU")
        assert "trainer.device=... for adapt" not in result.output

    assert run_cli("adapt", "-m", "sparsity=0.3,0.5", *overrides, "hydra.sweep.dir=sweep").exit_code == 0
    shutil.rmtree(sorted((in_tmp / "sweep").rglob("metrics.json"))[1].parent)  # a job still to run
    record = in_tmp / "sweep" / rundir.SWEEP_RECORD
    record.write_text(record.read_text().replace("trainer.device=cpu", "trainer.device=cuda"))
    result = run_cli("adapt", "--resume", "sweep")
    assert_one_line_error(result, "trainer.device=cuda but no CUDA GPU is visible; continue the sweep sweep on a machine with that GPU",
                          "no job was run again")
    assert len(list((in_tmp / "sweep").rglob("metrics.json"))) == 1


def test_checkpoint_kept_on_request(in_tmp: Path, tiny_model_dir: Path):
    result = run_cli("adapt", "checkpoint.every_steps=2", "checkpoint.keep=true", *tiny_overrides(tiny_model_dir, steps=6))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    assert (run_dir / rundir.CHECKPOINT_STATE).exists()
    assert read_metrics(run_dir)["checkpoints"]["saved"] >= 2


def test_sigkilled_subprocess_resumes_bit_identical(in_tmp: Path, tiny_model_dir: Path):
    """A real SIGKILL at an arbitrary moment after the first checkpoint, then `--resume`."""
    common = ["checkpoint.every_steps=25", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=300)]
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", *common]
    env = dict(os.environ)
    subprocess.run([*command, "hydra.run.dir=uninterrupted"], cwd=in_tmp, env=env, check=True, capture_output=True, timeout=300)

    killed = in_tmp / "killed"
    process = subprocess.Popen([*command, "hydra.run.dir=killed"], cwd=in_tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = killed / rundir.CHECKPOINT_PROGRESS
    deadline = time.monotonic() + 240
    while not progress.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # somewhere between two checkpoints, possibly mid-write
    process.send_signal(signal.SIGKILL)
    process.wait()
    if (killed / rundir.METRICS).exists():
        pytest.fail("the run finished before it could be killed; give it more steps")

    result = subprocess.run([*command[:4], "--resume", str(killed)], cwd=in_tmp, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    _same_run(in_tmp / "uninterrupted", killed)


LAUNCH_FORMAT = "hydra.job_logging.formatters.simple.format='XX %(levelname)s %(message)s'"


def _stopped_with_settings(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, folder: str, *settings: str) -> Path:
    """A run launched with Hydra `settings`, killed after its step-3 checkpoint."""
    with monkeypatch.context() as patch:
        crash_at(patch, 4)
        with pytest.raises(Killed):
            run_cli("adapt", "checkpoint.every_steps=3", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=8),
                    *settings, f"hydra.run.dir={folder}")
    return in_tmp / folder


def test_a_resumed_run_logs_and_sets_its_environment_as_hydra_did_at_its_launch(in_tmp: Path, tiny_model_dir: Path,
                                                                                monkeypatch: pytest.MonkeyPatch):
    """A single run goes on without Hydra: it logged to run.log alone, in a fixed format, so the
    terminal showed nothing of the resumed run, and a log format, `hydra.verbose` or
    `hydra.job.env_set` given at launch was dropped halfway. Now the run's recorded settings are
    applied again, run.log goes on where it stopped, and the process is left as it was."""
    launched = _stopped_with_settings(in_tmp, tiny_model_dir, monkeypatch, "launched", LAUNCH_FORMAT,
                                      "+hydra.job.env_set.PRUNE_CLI_PROBE=launched", "hydra.verbose=prune_cli_probe")
    run_dir = launched.rename(in_tmp / "moved")  # run.log is the one in the folder resumed, not where Hydra wrote it
    monkeypatch.setenv("PRUNE_CLI_PROBE", "outer")
    logging.getLogger("prune_cli_probe").setLevel(logging.NOTSET)  # as a new process has it (Hydra's launch set it in this one)
    seen: list[tuple[str | None, bool]] = []  # at each step: the variable, and whether the verbose logger logs DEBUG
    original = checkpointing.Checkpointer.maybe_save
    monkeypatch.setattr(checkpointing.Checkpointer, "maybe_save", lambda self, *args: (
        seen.append((os.environ.get("PRUNE_CLI_PROBE"), logging.getLogger("prune_cli_probe").isEnabledFor(logging.DEBUG))), original(self, *args)))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    result = run_cli("adapt", "--resume", str(run_dir))
    assert result.exit_code == 0, result.output
    assert seen and set(seen) == {("launched", True)}, "the job's environment and hydra.verbose, as Hydra set them at launch"
    assert os.environ["PRUNE_CLI_PROBE"] == "outer", "and the process's own afterwards"
    assert f"XX INFO resuming {run_dir} from 'prune' after step 3" in result.output, "the resumed run's lines reach the terminal"
    log_lines = (run_dir / rundir.LOG).read_text().splitlines()
    resumed = log_lines.index(f"XX INFO resuming {run_dir} from 'prune' after step 3")
    assert resumed > 0 and all(line.startswith("XX ") for line in log_lines), "run.log goes on in the launch's format"
    assert "could not be applied" not in result.output and not launched.exists()
    assert root.handlers == handlers and root.level == level
    assert all(handler.stream is None for handler in root.handlers if isinstance(handler, logging.FileHandler)), "run.log is closed"


def test_a_resumed_run_whose_logging_record_cannot_be_applied_logs_as_hydra_does_by_default(in_tmp: Path, tiny_model_dir: Path,
                                                                                            monkeypatch: pytest.MonkeyPatch):
    """A hydra.yaml edited by hand (or missing) still lets the run go on: Hydra's default set-up,
    the terminal and run.log, and a warning where the record could not be applied."""
    broken = _stopped_with_settings(in_tmp, tiny_model_dir, monkeypatch, "broken", LAUNCH_FORMAT)
    settings = broken / rundir.HYDRA_SETTINGS
    settings.write_text(settings.read_text().replace("class: logging.StreamHandler", "class: logging.NoSuchHandler"))
    missing = _stopped_with_settings(in_tmp, tiny_model_dir, monkeypatch, "missing", LAUNCH_FORMAT)
    (missing / rundir.HYDRA_SETTINGS).unlink()
    for run_dir, warned in ((broken, True), (missing, False)):
        result = run_cli("adapt", "--resume", str(run_dir))
        assert result.exit_code == 0, result.output
        default_line = re.compile(r"^\[[^]]+\]\[prune_cli\.runner\]\[INFO\] - resuming ")
        assert any(default_line.match(line) for line in result.output.splitlines()), result.output
        assert any(default_line.match(line) for line in (run_dir / rundir.LOG).read_text().splitlines())
        assert ("the run's recorded logging set-up could not be applied" in result.output) == warned


def test_a_resumed_run_whose_recorded_environment_cannot_be_resolved_is_refused_and_kept(in_tmp: Path, tiny_model_dir: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch):
    run_dir = _stopped_with_settings(in_tmp, tiny_model_dir, monkeypatch, "env", "+hydra.job.env_set.PRUNE_CLI_PROBE=launched")
    settings = run_dir / rundir.HYDRA_SETTINGS
    settings.write_text(settings.read_text().replace("PRUNE_CLI_PROBE: launched", "PRUNE_CLI_PROBE: ${oops}"))
    checkpoint = (run_dir / rundir.CHECKPOINT_STATE).read_bytes()
    for dry_run in (["--dry-run"], []):
        result = run_cli("adapt", "--resume", str(run_dir), *dry_run)
        assert_one_line_error(result, f"error: {settings} has a value that cannot be resolved here ('hydra.job.env_set.PRUNE_CLI_PROBE': ",
                              "the run's job had it set (hydra.job.env_set), so it is not resumed without it")
    assert (run_dir / rundir.CHECKPOINT_STATE).read_bytes() == checkpoint and not (run_dir / rundir.METRICS).exists()


def test_resume_refuses_a_finished_run(in_tmp: Path, tiny_model_dir: Path):
    assert run_cli("adapt", *tiny_overrides(tiny_model_dir)).exit_code == 0
    run_dir = only_run_dir(in_tmp / "outputs")
    result = run_cli("adapt", "--resume", str(run_dir))
    assert result.exit_code == 2
    assert "already finished" in result.output


def test_resume_refuses_a_folder_that_is_not_a_run(in_tmp: Path):
    result = run_cli("adapt", "--resume", str(in_tmp))
    assert result.exit_code == 2
    assert "not a prune-cli run directory" in result.output and "nothing to resume" in result.output
    # a folder of sweeps, or a folder inside one, names what --resume does take
    (in_tmp / "grid" / "sst2").mkdir(parents=True)
    (in_tmp / "grid" / "multirun.yaml").write_text("hydra: {}\n")
    result = run_cli("adapt", "--resume", str(in_tmp))
    assert result.exit_code == 2 and f"it holds 1 sweep folder(s), e.g. {in_tmp / 'grid'}: pass one of those" in " ".join(result.output.split())
    result = run_cli("adapt", "--resume", str(in_tmp / "grid" / "sst2"))
    assert result.exit_code == 2 and f"`prune-cli adapt --resume {in_tmp / 'grid'}` continues that sweep" in " ".join(result.output.split())


def test_resume_refuses_extra_options(in_tmp: Path):
    result = run_cli("adapt", "--resume", str(in_tmp), "--task", "cola")
    assert result.exit_code == 2
    assert "drop the other options" in result.output


def test_resume_refuses_a_corrupt_checkpoint(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        crash_at(patch, 5)
        with pytest.raises(Killed):
            run_cli("adapt", "checkpoint.every_steps=2", *tiny_overrides(tiny_model_dir, steps=12), "hydra.run.dir=killed")
    state = in_tmp / "killed" / rundir.CHECKPOINT_STATE
    state.write_bytes(state.read_bytes()[:100])
    result = run_cli("adapt", "--resume", str(in_tmp / "killed"))
    assert result.exit_code == 2
    assert "cannot be read" in result.output and "delete the checkpoint folder" in result.output
    # readable, but not what a checkpoint holds (it was AttributeError: 'list' object has no attribute 'get')
    torch.save([1, 2], state)
    result = run_cli("adapt", "--resume", str(in_tmp / "killed"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "holds a Python list, not a prune-cli checkpoint; delete the checkpoint folder" in " ".join(result.output.split())


def _ctrl_c_at(monkeypatch: pytest.MonkeyPatch, phase: str, step: int, presses: int = 1) -> None:
    """Press Ctrl-C (a real SIGINT to this process) `presses` times during step `step` of
    `phase`, as it ends (steps are numbered as the run's history numbers them)."""
    original = checkpointing.Checkpointer.maybe_save

    def pressing(self, at_phase, steps_done, state):
        if (at_phase, steps_done) == (phase, step):
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler runs before the next press, as with a person's two presses
        original(self, at_phase, steps_done, state)

    monkeypatch.setattr(checkpointing.Checkpointer, "maybe_save", pressing)


def _interrupted_line(result) -> str:
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, result.output
    return lines[0]


# (method, extra overrides, sparsity, steps, the phase and step Ctrl-C comes in): each of the
# three loops that save checkpoints, stopped between two of its regular checkpoints (every 5 steps)
CTRL_C_CASES = [
    ("adapt_by_pruning", QUICK_PRUNING, "0.5", 40, "prune", 7),
    ("adapt_by_pruning", QUICK_PRUNING, "0.5", 40, "head", 33),
    ("finetune", [], "0.0", 12, "finetune", 8),
]


@pytest.mark.parametrize(("method", "extra", "sparsity", "steps", "phase", "saved_at"), CTRL_C_CASES,
                         ids=[f"{c[0]}-{c[4]}" for c in CTRL_C_CASES])
def test_ctrl_c_saves_a_checkpoint_at_the_step_and_resumes_bit_identical(
        in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        method: str, extra: list[str], sparsity: str, steps: int, phase: str, saved_at: int):
    """The first Ctrl-C lets the step finish, saves there (not at the last regular checkpoint,
    which would lose steps), exits 130 with one line naming the resume command."""
    common = [*extra, f"method={method}", f"sparsity={sparsity}", "checkpoint.every_steps=5", "trainer.epochs=null",
              *tiny_overrides(tiny_model_dir, steps=steps)]
    assert run_cli("adapt", *common, "hydra.run.dir=uninterrupted").exit_code == 0
    with monkeypatch.context() as patch:
        _ctrl_c_at(patch, phase, saved_at)
        line = _interrupted_line(run_cli("adapt", *common, "hydra.run.dir=stopped"))
    stopped = in_tmp / "stopped"
    assert f"after step {saved_at} of phase '{phase}'" in line and f"prune-cli adapt --resume {stopped}" in line, line
    assert json.loads((stopped / rundir.CHECKPOINT_PROGRESS).read_text()) == {"phase": phase, "steps_done": saved_at,
                                                                              "versions": {"prune_cli": prune_cli.__version__}}
    assert rundir.recorded_prune_cli_version(stopped) == prune_cli.__version__
    assert not (stopped / rundir.METRICS).exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the run's Ctrl-C handler outlived it"

    result = run_cli("adapt", "--resume", str(stopped))
    assert result.exit_code == 0, result.output
    _same_run(in_tmp / "uninterrupted", stopped)
    assert resumed_at(stopped) == {"phase": phase, "steps_done": saved_at}


def test_second_ctrl_c_stops_at_once_and_the_last_regular_checkpoint_resumes(
        in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    common = [*QUICK_PRUNING, "checkpoint.every_steps=5", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=40)]
    assert run_cli("adapt", *common, "hydra.run.dir=uninterrupted").exit_code == 0
    with monkeypatch.context() as patch:
        _ctrl_c_at(patch, "prune", 7, presses=2)
        line = _interrupted_line(run_cli("adapt", *common, "hydra.run.dir=stopped"))
    assert "after step 5 of phase 'prune'" in line, line
    # a new run into the stopped one's folder is refused, before Hydra could rewrite its config
    config = (in_tmp / "stopped" / rundir.CONFIG).read_bytes()
    other_batch = [*QUICK_PRUNING, "checkpoint.every_steps=5", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, "trainer.batch_size=4", steps=40)]
    refused = run_cli("adapt", *other_batch, "hydra.run.dir=stopped")
    assert refused.exit_code == 2 and "holds a stopped run" in refused.output and "--resume" in refused.output, refused.output
    assert (in_tmp / "stopped" / rundir.CONFIG).read_bytes() == config
    result = run_cli("adapt", "--resume", str(in_tmp / "stopped"))
    assert result.exit_code == 0, result.output
    _same_run(in_tmp / "uninterrupted", in_tmp / "stopped")


def test_ctrl_c_with_checkpoints_off_says_the_run_starts_again(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        _ctrl_c_at(patch, "prune", 3)
        line = _interrupted_line(run_cli("adapt", "checkpoint.every_steps=0", *tiny_overrides(tiny_model_dir, steps=6),
                                         "hydra.run.dir=stopped"))
    assert "holds no checkpoint" in line and "runs it again from step 0" in line, line
    assert not (in_tmp / "stopped" / rundir.CHECKPOINT).exists()


def _stopped_job_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("stopped sweep job")]


def test_ctrl_c_stops_a_sweep_and_names_its_job(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        _ctrl_c_at(patch, "prune", 2)
        result = run_cli("adapt", "-m", "seed=1,2", "checkpoint.every_steps=5", *tiny_overrides(tiny_model_dir, steps=12),
                         "hydra.sweep.dir=sweep", "hydra.sweep.subdir=seed${seed}")
    assert "the sweep stopped" in _interrupted_line(result)
    job = in_tmp / "sweep" / "seed1"
    assert _stopped_job_lines(result.output) == [f"stopped sweep job 0: {job} holds a checkpoint after step 2 of phase 'prune'; "
                                                 f"`prune-cli adapt --resume {job}` continues from there"], result.output
    assert not (in_tmp / "sweep" / "seed2").exists(), "the second job started after Ctrl-C"


def test_a_stopped_sweep_continues_from_its_folder_and_ends_as_if_never_stopped(
        in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """`adapt --resume SWEEP_DIR`: the stopped job resumes from its checkpoint (bit-identical to
    an uninterrupted sweep's), the job that never started runs, and nothing is run twice."""
    common = ["seed=1,2", "checkpoint.every_steps=5", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=12),
              "hydra.sweep.subdir=seed${seed}"]
    assert run_cli("adapt", "-m", *common, "hydra.sweep.dir=reference").exit_code == 0
    with monkeypatch.context() as patch:
        _ctrl_c_at(patch, "prune", 2)
        line = _interrupted_line(run_cli("adapt", "-m", *common, "hydra.sweep.dir=sweep"))
    assert "`prune-cli adapt --resume sweep` continues it" in line, line
    assert (in_tmp / "sweep" / "seed1" / rundir.CHECKPOINT).is_dir() and not (in_tmp / "sweep" / "seed2").exists()
    config = (in_tmp / "sweep" / "seed1" / rundir.CONFIG).read_bytes()

    result = run_cli("adapt", "--resume", "sweep")
    assert result.exit_code == 0, result.output
    for seed in (1, 2):
        _same_run(in_tmp / "reference" / f"seed{seed}", in_tmp / "sweep" / f"seed{seed}")
    assert resumed_at(in_tmp / "sweep" / "seed1") == {"phase": "prune", "steps_done": 2}
    assert (in_tmp / "sweep" / "seed1" / rundir.CONFIG).read_bytes() == config

    again = run_cli("adapt", "--resume", "sweep")  # a finished sweep: every job says so, none runs
    assert again.exit_code == 0 and again.output.count("finished already") == 2, again.output


def test_a_stopped_sweep_or_run_on_a_read_only_disk_is_refused_in_one_line(in_tmp: Path, tiny_model_dir: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    """Continuing a sweep kept on a read-only disk ended in Hydra's traceback (it rewrites
    multirun.yaml first); resuming one of its stopped jobs said it could not write, not why."""
    from conftest import pretend_read_only

    common = ["seed=1,2", "checkpoint.every_steps=5", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=12),
              "hydra.sweep.subdir=seed${seed}"]
    with monkeypatch.context() as patch:
        _ctrl_c_at(patch, "prune", 2)
        _interrupted_line(run_cli("adapt", "-m", *common, "hydra.sweep.dir=sweep"))
    assert (in_tmp / "sweep" / "seed1" / rundir.CHECKPOINT).is_dir()
    pretend_read_only(monkeypatch, in_tmp / "sweep")
    assert_one_line_error(run_cli("adapt", "--resume", "sweep"),
                          "cannot write to sweep folder sweep (Read-only file system); continuing the sweep writes its runs there")
    assert_one_line_error(run_cli("adapt", "--resume", "sweep/seed1"),
                          "cannot write to run directory sweep/seed1 (Read-only file system); resuming needs to write its results there")
    assert not (in_tmp / "sweep" / "seed2").exists()


def test_a_continued_sweep_runs_its_failed_jobs_again_from_any_folder(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A job that failed (its data was missing) runs again once the data is there; its old
    failed.json goes, so the report lists it as finished. Relative paths in the sweep's command
    are read from the folder it was launched in, wherever --resume is typed."""
    shutil.copytree(FIXTURE_GLUE / "SST-2", in_tmp / "glue" / "SST-2")
    overrides = [o for o in tiny_overrides(tiny_model_dir, steps=3) if not o.startswith("data.dir=")]
    result = run_cli("adapt", "-m", "--task", "sst2,rte", "data.dir=glue", "hydra.sweep.dir=sweep", *overrides)
    assert result.exit_code == 2 and "1 sweep job(s) failed" in result.output
    shutil.copytree(FIXTURE_GLUE / "RTE", in_tmp / "glue" / "RTE")
    (in_tmp / "elsewhere").mkdir()
    monkeypatch.chdir(in_tmp / "elsewhere")
    result = run_cli("adapt", "--resume", str(in_tmp / "sweep"))
    assert result.exit_code == 0, result.output
    assert result.output.count("finished already") == 1
    runs = sorted(p.parent for p in (in_tmp / "sweep").rglob("metrics.json"))
    assert sorted(read_metrics(run)["task"] for run in runs) == ["rte", "sst2"]
    assert not list((in_tmp / "sweep").rglob("failed.json"))
    assert not (in_tmp / "elsewhere" / "outputs").exists()


def test_ctrl_c_on_a_parallel_sweep_stops_every_running_job_at_a_step_with_a_checkpoint(in_tmp: Path, tiny_model_dir: Path):
    """joblib's workers get a terminal's Ctrl-C too (one process group): the launcher waits
    instead of dying and killing them mid-step, each running job stops after its step with a
    checkpoint (none raises, so joblib cannot end the sweep at the first and kill the other
    mid-save), and no later job starts."""
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", "-m", "seed=1,2,3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
               "trainer.num_threads=1", "checkpoint.every_steps=25", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=3000),
               "hydra.sweep.dir=sweep", "hydra.sweep.subdir=seed${seed}"]
    process = subprocess.Popen(command, cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    progress = [in_tmp / "sweep" / f"seed{seed}" / rundir.CHECKPOINT_PROGRESS for seed in (1, 2)]
    deadline = time.monotonic() + 240
    while not all(p.exists() for p in progress) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGINT, out + err  # ends killed by SIGINT, as a shell expects
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1 and "the sweep stopped: `prune-cli adapt --resume sweep` continues it" in lines[0], err[-3000:]
    assert "Traceback" not in err
    assert len(_stopped_job_lines(err)) == 2 and all("--resume" in line for line in _stopped_job_lines(err)), err[-3000:]
    for path in progress:
        job = path.parent.parent
        stops = re.findall(r"stopped after step (\d+) of phase '([^']+)'; checkpoint saved", (job / rundir.LOG).read_text())
        assert len(stops) == 1, f"{job.name} did not stop at a step boundary"  # killed mid-step, it would log nothing
        assert json.loads(path.read_text()) == {"phase": stops[0][1], "steps_done": int(stops[0][0]),
                                                "versions": {"prune_cli": prune_cli.__version__}}
        assert not (job / rundir.METRICS).exists()
    assert not (in_tmp / "sweep" / "seed3").exists(), "a job started after Ctrl-C"


def test_the_first_stop_signal_is_recorded_and_the_second_stops_at_once():
    """Inside nested blocks (a sweep around a job's training) one record; the handlers go back after."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stopping.deferred("the sweep stops"):
        with stopping.deferred("the run stops"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert stopping.requested == signal.SIGTERM
        assert stopping.requested == signal.SIGTERM, "the sweep must see its job's stop"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert stopping.requested is None, "a stop of this sweep would refuse the next command's runs"


def test_a_sweep_asked_to_stop_between_jobs_starts_no_further_job(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from prune_cli import runner

    finish = runner.adapt

    def finish_then_stop(cfg, run_dir, resume=False):  # a Ctrl-C as job 0 has just finished
        value = finish(cfg, run_dir, resume)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        return value

    monkeypatch.setattr(runner, "adapt", finish_then_stop)
    line = _interrupted_line(run_cli("adapt", "-m", "seed=1,2", *tiny_overrides(tiny_model_dir), "hydra.sweep.dir=sweep",
                                     "hydra.sweep.subdir=seed${seed}"))
    assert "the sweep stopped" in line and "jobs that had not started did not run" in line, line
    assert (in_tmp / "sweep" / "seed1" / rundir.METRICS).exists()
    assert not (in_tmp / "sweep" / "seed2").exists(), "the job that never started left its directory"


def test_sigterm_stops_a_run_at_a_step_and_the_process_ends_killed_by_it(in_tmp: Path, tiny_model_dir: Path):
    """A scheduler's preemption (SIGTERM, to the process alone) is a stop like Ctrl-C."""
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", "checkpoint.every_steps=25", "trainer.epochs=null",
               *tiny_overrides(tiny_model_dir, steps=3000), "hydra.run.dir=run"]
    process = subprocess.Popen(command, cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = in_tmp / "run" / rundir.CHECKPOINT_PROGRESS
    deadline = time.monotonic() + 240
    while not progress.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM, out + err
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1 and lines[0].startswith("interrupted (SIGTERM): ") and "--resume" in lines[0], err[-3000:]
    stops = re.findall(r"stopped after step (\d+) of phase '([^']+)'; checkpoint saved", (in_tmp / "run" / rundir.LOG).read_text())
    assert len(stops) == 1 and json.loads(progress.read_text()) == {"phase": stops[0][1], "steps_done": int(stops[0][0]),
                                                                    "versions": {"prune_cli": prune_cli.__version__}}


def _held_writes(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[str]]:
    """Checkpoint writes that wait for the returned event (10 s at most) before writing."""
    release, written = threading.Event(), []
    original = rundir.atomic_write

    def held(path, write):
        release.wait(timeout=10)
        original(path, write)
        written.append(Path(path).name)

    monkeypatch.setattr(rundir, "atomic_write", held)
    return release, written


def test_a_checkpoint_is_written_while_training_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """save() copies the state and returns; serialising and writing it (about a gigabyte at
    BERT-base's size) happen on another thread, and wait() is where it is known to be on disk."""
    release, written = _held_writes(monkeypatch)
    saver = checkpointing.Checkpointer(tmp_path, 1, {}, [])
    saver.save("prune", 1, {"theta": torch.ones(3)})
    assert written == [] and not (tmp_path / rundir.CHECKPOINT_STATE).exists()  # save() did not wait for the write
    release.set()
    saver.wait()
    assert written == ["state.pt", "progress.json"] and (tmp_path / rundir.CHECKPOINT_PROGRESS).exists()
    assert torch.load(tmp_path / rundir.CHECKPOINT_STATE, weights_only=True)["state"]["theta"].tolist() == [1.0, 1.0, 1.0]


def test_the_state_saved_is_the_one_at_the_save_not_at_the_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Training changes θ in place right after a save: the file must hold θ as it was at the save."""
    release, _ = _held_writes(monkeypatch)
    saver = checkpointing.Checkpointer(tmp_path, 1, {}, [])
    theta = torch.zeros(4)
    saver.save("prune", 1, {"theta": theta})
    theta.add_(5.0)  # the next step, while the write is held
    release.set()
    saver.wait()
    assert torch.load(tmp_path / rundir.CHECKPOINT_STATE, weights_only=True)["state"]["theta"].tolist() == [0.0] * 4


def test_each_save_writes_its_own_step_while_the_previous_write_may_be_in_flight(tmp_path: Path):
    saver = checkpointing.Checkpointer(tmp_path, 1, {}, [])
    theta = torch.zeros(1000)
    saver.save("prune", 1, {"theta": theta})
    theta.add_(1.0)
    saver.save("prune", 2, {"theta": theta})
    theta.add_(1.0)
    saver.wait()
    saved = torch.load(tmp_path / rundir.CHECKPOINT_STATE, weights_only=True)
    assert saved["steps_done"] == 2 and saved["state"]["theta"].sum().item() == 1000.0


def test_a_failed_background_write_fails_the_next_save_and_not_a_finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                               caplog: pytest.LogCaptureFixture):
    def full_disk(path, write):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rundir, "atomic_write", full_disk)
    saver = checkpointing.Checkpointer(tmp_path, 1, {}, [])
    saver.save("prune", 1, {"theta": torch.ones(2)})
    with pytest.raises(OSError, match="No space left"):
        saver.save("prune", 2, {"theta": torch.ones(2)})  # as a synchronous write would, one save later
    saver.save("prune", 3, {"theta": torch.ones(2)})
    saver.finish(keep=False)  # the results are written by now: the lost checkpoint is logged, not raised
    assert "the last checkpoint could not be written: [Errno 28] No space left on device" in caplog.text
    assert not (tmp_path / rundir.CHECKPOINT).exists()


def test_a_clean_finish_waits_for_the_last_write_before_deleting_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    release, written = _held_writes(monkeypatch)
    saver = checkpointing.Checkpointer(tmp_path, 1, {}, [])
    saver.save("head", 9, {"theta": torch.ones(2)})
    threading.Timer(0.2, release.set).start()
    saver.finish(keep=False)
    assert written == ["state.pt", "progress.json"] and not (tmp_path / rundir.CHECKPOINT).exists(), "the write landed after the folder was deleted"


def test_a_crashed_run_has_its_last_checkpoint_on_disk_when_the_crash_is_reported(in_tmp: Path, tiny_model_dir: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch):
    release, written = _held_writes(monkeypatch)
    threading.Timer(0.5, release.set).start()
    crash_at(monkeypatch, 2)
    with pytest.raises(Killed):
        run_cli("adapt", "checkpoint.every_steps=2", *tiny_overrides(tiny_model_dir, steps=6), "hydra.run.dir=crashed")
    assert written == ["state.pt", "progress.json"] and (in_tmp / "crashed" / rundir.CHECKPOINT_STATE).exists()


@pytest.mark.parametrize(("record", "problem"), [("hydra:\n  overrides: [1\n  x: 2\n", "expected ',' or ']', but got ':' at line 3"),
                                                 ("hydra: 1\n", "'int' object has no attribute 'overrides'")],
                         ids=["not YAML", "no overrides"])
def test_a_sweep_record_that_cannot_be_read_is_named_in_one_line(in_tmp: Path, record: str, problem: str):
    """Hydra's multirun.yaml, edited by hand: the problem and its line, not YAML's multi-line context."""
    (in_tmp / "sweep").mkdir()
    (in_tmp / "sweep" / "multirun.yaml").write_text(record)
    assert_one_line_error(run_cli("adapt", "--resume", str(in_tmp / "sweep")),
                          f"{in_tmp / 'sweep' / 'multirun.yaml'} cannot be read as a Hydra sweep record: {problem}")


def test_a_full_disk_is_reported_for_the_file_meant_whoever_wrote_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`torch.save` given a path writes from C++ and reports a full disk as a RuntimeError about its
    zip file ("unexpected pos"); an OSError of a write names the temporary twin. Both are now the
    OSError of the file meant, ENOSPC (or the quota's EDQUOT), and the twin is gone."""
    import errno

    target = tmp_path / "state.pt"

    def short_write(tmp: Path) -> None:
        tmp.write_bytes(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 9280 vs 9174")

    def over_quota(tmp: Path) -> None:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(tmp))

    pretend_disk_free(monkeypatch, 4096)
    for write, code in ((short_write, errno.ENOSPC), (over_quota, errno.EDQUOT)):
        with pytest.raises(OSError) as raised:
            rundir.atomic_write(target, write)
        assert (raised.value.errno, raised.value.filename) == (code, str(target))
        assert list(tmp_path.iterdir()) == [], "the temporary file stays behind"
    pretend_disk_free(monkeypatch, 1 << 30)  # with room on the disk, torch's error is some other failure: passed on as it is
    with pytest.raises(RuntimeError, match="unexpected pos"):
        rundir.atomic_write(target, short_write)


def test_a_read_only_folder_is_reported_for_the_file_meant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The temporary file could not be made, and the error named it ('.topology.csv.gshleiy7.tmp'), a
    file the user never asked for."""
    import errno

    from conftest import pretend_read_only

    pretend_read_only(monkeypatch, tmp_path)
    with pytest.raises(OSError) as raised:
        rundir.atomic_write_text(tmp_path / "topology.csv", "a,b\n")
    assert (raised.value.errno, raised.value.filename) == (errno.EROFS, str(tmp_path / "topology.csv"))


def test_a_run_stopped_by_a_full_disk_says_where_it_was_left_and_resumes(in_tmp: Path, tiny_model_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """The disk fills while the second checkpoint is written (in the background, found at the
    next save): a one-line error, not Hydra's report of a RuntimeError, that names the file, the
    checkpoint that is still whole and the command that goes on from it; and that command does."""
    saves = {"n": 0}
    real_save = torch.save

    def filling_disk(payload, path, *args, **kwargs):
        saves["n"] += 1
        if saves["n"] == 2:
            pretend_disk_free(monkeypatch, 0)
            Path(path).write_bytes(b"half")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 9280 vs 9174")
        return real_save(payload, path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", filling_disk)
        result = run_cli("adapt", "checkpoint.every_steps=2", *tiny_overrides(tiny_model_dir, steps=8), "hydra.run.dir=full")
    run_dir = in_tmp / "full"
    assert_one_line_error(result, f"error: No space left on device ({run_dir / rundir.CHECKPOINT_STATE}): free some space, "
                                  f"or write elsewhere; the run stopped: {run_dir} holds a checkpoint after step 2 of phase ",
                          f"`prune-cli adapt --resume {run_dir}` continues from there")
    assert not (run_dir / rundir.METRICS).exists() and [p.name for p in (run_dir / rundir.CHECKPOINT).iterdir()] == ["progress.json", "state.pt"]
    with monkeypatch.context() as patch:  # resumed on a disk still full: the same line, from the same checkpoint
        saves["n"] = 1
        patch.setattr(torch, "save", filling_disk)
        again = run_cli("adapt", "--resume", str(run_dir))
    # (in this process, logging still holds Hydra's handler on the first call's closed stream and says so; a real one prints the line alone)
    [line] = [text for text in again.output.splitlines() if text.startswith("error:")]
    assert again.exit_code == 2 and line.startswith(f"error: No space left on device ({run_dir / rundir.CHECKPOINT_STATE}): free some space, "
                                                    f"or write elsewhere; the run stopped: {run_dir} holds a checkpoint after step 2 of phase ")
    resumed = run_cli("adapt", "--resume", str(run_dir))
    assert resumed.exit_code == 0, resumed.output
    assert read_metrics(run_dir)["resumed_from"]["steps_done"] == 2


def test_a_run_whose_results_find_the_disk_full_keeps_what_it_wrote(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Without checkpoints, the disk full at the head: the mask already written stays, and the
    line says the run starts again from step 0 (Hydra's "OSError: [Errno 28]" said neither)."""
    real_write = rundir.atomic_write_bytes

    def full_at_head(path: Path, payload) -> None:
        if path.name == rundir.HEAD:
            raise OSError(28, "No space left on device", str(path))
        real_write(path, payload)

    with monkeypatch.context() as patch:
        patch.setattr(rundir, "atomic_write_bytes", full_at_head)
        result = run_cli("adapt", "checkpoint.every_steps=0", *tiny_overrides(tiny_model_dir), "hydra.run.dir=full")
    run_dir = in_tmp / "full"
    assert_one_line_error(result, f"error: No space left on device ({run_dir / rundir.HEAD}): free some space, or write elsewhere; "
                                  f"the run stopped: {run_dir} holds no checkpoint; `prune-cli adapt --resume {run_dir}` runs it again from step 0")
    assert (run_dir / rundir.MASK).exists() and not (run_dir / rundir.METRICS).exists()
    assert run_cli("adapt", "--resume", str(run_dir)).exit_code == 0 and (run_dir / rundir.METRICS).exists()


def test_a_sweep_job_whose_failure_cannot_be_recorded_is_named_with_its_reason(in_tmp: Path, tiny_model_dir: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    """On a full disk the failed job's failed.json cannot be written either; that second OSError
    ended the sweep in Hydra's traceback. Now the sweep's last line carries the reason itself."""
    from prune_cli import runner

    real_adapt, real_json = runner._adapt, rundir.write_json

    def full_for_seed_2(cfg, run_dir, resume):
        if int(cfg.seed) == 2:
            raise OSError(28, "No space left on device", str(run_dir / rundir.MASK))
        return real_adapt(cfg, run_dir, resume)

    def no_room_for_failures(path: Path, payload) -> None:
        if path.name == rundir.FAILED:
            raise OSError(28, "No space left on device", str(path))
        real_json(path, payload)

    monkeypatch.setattr(runner, "_adapt", full_for_seed_2)
    monkeypatch.setattr(rundir, "write_json", no_room_for_failures)
    result = run_cli("adapt", "-m", "seed=1,2", "hydra.sweep.dir=sweep", *tiny_overrides(tiny_model_dir, steps=3))
    [failed] = [p.parent for p in (in_tmp / "sweep").rglob(".hydra") if p.parent.name.startswith("seed2")]
    last = [line for line in result.output.splitlines() if line.startswith("error:")][-1]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert last == (f"error: 1 sweep job(s) failed: {failed} (No space left on device ({failed / rundir.MASK}): free some space, "
                    f"or write elsewhere; its {rundir.FAILED} could not be written: No space left on device)")
    assert len(list((in_tmp / "sweep").rglob(rundir.METRICS))) == 1


def test_a_sweep_job_that_failed_after_a_checkpoint_resumes_and_is_no_longer_listed_as_failed(
        in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A job that failed mid-run (its disk full) keeps its checkpoint, and `--resume <sweep>` goes on
    from it; its failed.json stayed beside the finished results, so the continued sweep still ended
    "1 sweep job(s) failed" and `report` listed the finished run as failed."""
    common = ["seed=1,2", "checkpoint.every_steps=2", *tiny_overrides(tiny_model_dir, steps=8), "hydra.sweep.subdir=seed${seed}"]
    real_save = checkpointing.Checkpointer.maybe_save

    def full_after_a_checkpoint(self, phase, steps_done, state):
        real_save(self, phase, steps_done, state)
        if "seed2" in str(self.run_dir) and self.saves == 1:
            self.wait()
            raise OSError(28, "No space left on device", str(self.run_dir / rundir.HEAD))

    with monkeypatch.context() as patch:
        patch.setattr(checkpointing.Checkpointer, "maybe_save", full_after_a_checkpoint)
        failed = run_cli("adapt", "-m", *common, "hydra.sweep.dir=sweep")
    assert failed.exit_code == 2 and "1 sweep job(s) failed" in failed.output, failed.output
    job = in_tmp / "sweep" / "seed2"
    assert (job / rundir.FAILED).is_file() and (job / rundir.CHECKPOINT_STATE).is_file()
    assert_one_line_error(run_cli("evaluate", str(job)), f"{job} is a run that has not finished (no metrics.json): it failed after step 2 "
                                                         f"of 8 in phase 'prune' (its failed.json says why); it holds a checkpoint after step 2 of phase")

    result = run_cli("adapt", "--resume", "sweep")
    assert result.exit_code == 0, result.output
    assert read_metrics(job)["resumed_from"]["steps_done"] == 2 and not (job / rundir.FAILED).exists()
    assert run_cli("report", "sweep").exit_code == 0 and "0 failed" in (in_tmp / "sweep" / "report.md").read_text()


def _seen_held_from_another_process(folder: Path) -> bool:
    """Whether a second process finds `folder` held (this process's own holds are re-entrant to it,
    so only another process can tell that a finished command gave a folder back)."""
    code = "import sys; from pathlib import Path; from prune_cli import folder_lock; print(folder_lock.held_elsewhere(Path(sys.argv[1])))"
    return subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True).stdout.strip() == "True"


STOPPED_SWEEP = ["seed=1,2", "checkpoint.every_steps=5", "trainer.epochs=null", "hydra.sweep.subdir=seed${seed}"]


def _stop_a_sweep(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep `sweep/`, stopped by Ctrl-C at step 2 of its first job (seed1, with a checkpoint);
    its second job (seed2) never started."""
    with monkeypatch.context() as patch:
        _ctrl_c_at(patch, "prune", 2)
        _interrupted_line(run_cli("adapt", "-m", *STOPPED_SWEEP, *tiny_overrides(tiny_model_dir, steps=12), "hydra.sweep.dir=sweep"))


def test_a_run_still_going_is_not_resumed_by_a_second_process_nor_touched(in_tmp: Path, tiny_model_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    """`adapt --resume RUN` on a run another process is still running (in another terminal, under
    nohup) trained a second copy into the same folder: both wrote its checkpoint, the first to
    finish removed it under the other, the last writer's files won. Now one line, the folder as it
    was (its log included); once the other process has ended, the resume runs."""
    from conftest import folder_snapshot, held_by_another_process

    with monkeypatch.context() as patch:
        _ctrl_c_at(patch, "prune", 2)
        run_cli("adapt", "checkpoint.every_steps=5", *tiny_overrides(tiny_model_dir, steps=12), "hydra.run.dir=run")
    run = in_tmp / "run"
    assert (run / rundir.CHECKPOINT_STATE).is_file()
    before = folder_snapshot(run)
    with held_by_another_process(run):
        result = run_cli("adapt", "--resume", "run")
        listed = run_cli("report", "run", "--out", "report")
        scored = run_cli("evaluate", "run")
    assert_one_line_error(scored, "run is a run that has not finished (no metrics.json): another process is running it now (wait for it to finish); "
                                  "it has done step 2 of 12 in phase 'prune'", exit_code=75)
    assert_one_line_error(run_cli("export", "run", "--out", "exported"),
                          "run is a run that has not finished (no metrics.json): stopped or killed after step 2 of 12 in phase 'prune'; "
                          "it holds a checkpoint after step 2 of phase 'prune'; `prune-cli adapt --resume run` continues from there")
    assert listed.exit_code == 0, listed.output
    assert ("- incomplete: `run`: no metrics.json: another process is running it now (wait for it to finish); it has done step 2 of 12 "
            "in phase 'prune'") in (in_tmp / "report" / "report.md").read_text()
    assert_one_line_error(result, "run directory run is in use: another prune-cli process is running it (the run itself, or a "
                                  "--resume of it); let it finish, or stop it (Ctrl-C leaves a checkpoint) and then "
                                  "`prune-cli adapt --resume run`", exit_code=75)
    assert folder_snapshot(run) == before
    resumed = run_cli("adapt", "--resume", "run")
    assert resumed.exit_code == 0, resumed.output
    assert resumed_at(run) == {"phase": "prune", "steps_done": 2}
    assert not _seen_held_from_another_process(run)  # given back when the resume ended


def test_a_run_sent_to_the_folder_of_a_run_going_on_leaves_that_run_alone(in_tmp: Path, tiny_model_dir: Path):
    """Two commands given one hydra.run.dir at once: the second rewrote the first's config as Hydra
    started it and trained beside it; refused, it would have removed the folder as an unstarted run
    of its own, since early on a run holds only its config and log."""
    from conftest import folder_snapshot, held_by_another_process

    busy = in_tmp / "busy"
    (busy / rundir.HYDRA_DIR).mkdir(parents=True)
    (busy / rundir.CONFIG).write_text("the other run's config\n")
    (busy / rundir.LOG).write_text("the other run's log\n")
    before = folder_snapshot(busy)
    with held_by_another_process(busy):
        result = run_cli("adapt", *tiny_overrides(tiny_model_dir), "hydra.run.dir=busy")
    assert_one_line_error(result, "busy is in use: another prune-cli process is running it", exit_code=75)
    assert folder_snapshot(busy) == before


def test_runs_launched_at_once_each_get_a_folder_of_their_own(in_tmp: Path, tiny_model_dir: Path):
    """Three runs started together (`for s in 1 2 3; do prune-cli adapt seed=$s & done`) picked one
    run directory, the time to the second: Hydra wrote each one's config there, one finished with
    another's `.hydra/config.yaml` beside its mask (its record said seed 3 of seed 2's run), and
    the others were refused as "in use". Each launch now makes its folder as its own before Hydra
    writes: three runs in `race`, `race_2` and `race_3`, each with its own config and log. The
    folder is named by `unique_dir` here, as the default one is, so that the three pick the same
    name whatever second each starts in."""
    from omegaconf import OmegaConf

    launched = [subprocess.Popen([sys.executable, "-m", "prune_cli.cli", "adapt", *tiny_overrides(tiny_model_dir, steps=2), f"seed={seed}",
                                  "hydra.run.dir=${unique_dir:race}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for seed in (1, 2, 3)]
    said = [process.communicate(timeout=600)[0] for process in launched]
    assert [process.returncode for process in launched] == [0, 0, 0], said
    folders = sorted(in_tmp.glob("race*"))
    assert [folder.name for folder in folders] == ["race", "race_2", "race_3"]
    recorded = [(OmegaConf.load(folder / rundir.CONFIG).seed, read_metrics(folder)["seed"]) for folder in folders]
    assert all(config == result for config, result in recorded) and sorted(seed for seed, _ in recorded) == [1, 2, 3]
    assert all((folder / rundir.LOG).read_text().count("finished in") == 1 for folder in folders)


def test_a_folder_picked_for_a_launch_and_made_since_is_passed_over(in_tmp: Path, tiny_model_dir: Path):
    """The folder `unique_dir` picks was new when picked; another launch may make it before this
    one does. The checks then pass it over (no "in use"), and the launch makes the next name its
    own; so does a sweep's folder. A folder named outright is made as it is, and is the folder
    lock's to decide."""
    from conftest import held_by_another_process
    from prune_cli.config import check_run_dir, check_sweep_dir, claim_new_folder, launch_settings

    settings = launch_settings(tiny_overrides(tiny_model_dir, "hydra.run.dir=${unique_dir:runs/race}"))
    assert str(settings.run.dir) == "runs/race"
    (in_tmp / "runs" / "race").mkdir(parents=True)  # another launch's, going on
    with held_by_another_process(in_tmp / "runs" / "race"):
        assert check_run_dir(settings) == in_tmp / "runs"  # what a refused launch may clean up to
        assert claim_new_folder(str(settings.run.dir), "hydra.run.dir") == "runs/race_2"
    assert (in_tmp / "runs" / "race_2").is_dir() and not any((in_tmp / "runs" / "race_2").iterdir())
    swept = launch_settings(tiny_overrides(tiny_model_dir, "hydra.sweep.dir=${unique_dir:sweeps/race}"))
    (in_tmp / "sweeps" / "race").mkdir(parents=True)
    with held_by_another_process(in_tmp / "sweeps" / "race"):  # a sweep going on there, which it would have been refused as
        check_sweep_dir(swept)
        assert claim_new_folder(str(swept.sweep.dir), "hydra.sweep.dir") == "sweeps/race_2"
    named = launch_settings(tiny_overrides(tiny_model_dir, "hydra.run.dir=mine"))
    assert claim_new_folder(str(named.run.dir), "hydra.run.dir") == "mine" and (in_tmp / "mine").is_dir()
    assert claim_new_folder(str(named.run.dir), "hydra.run.dir") == "mine"


def test_a_sweep_still_running_is_not_continued_by_a_second_process_nor_touched(in_tmp: Path, tiny_model_dir: Path,
                                                                                monkeypatch: pytest.MonkeyPatch):
    """`adapt --resume SWEEP` while the sweep still runs elsewhere ran its jobs a second time into
    the same folders. Now one line before Hydra writes anything (multirun.yaml included)."""
    from conftest import folder_snapshot, held_by_another_process

    _stop_a_sweep(tiny_model_dir, monkeypatch)
    sweep = in_tmp / "sweep"
    before = folder_snapshot(sweep)
    with held_by_another_process(sweep):
        result = run_cli("adapt", "--resume", "sweep")
        another = run_cli("adapt", "-m", "seed=3", *tiny_overrides(tiny_model_dir), "hydra.sweep.dir=sweep")
    assert_one_line_error(another, "sweep folder sweep is in use: another prune-cli process is running a sweep there; a sweep never "
                                   "writes into another's folder: name a new hydra.sweep.dir or leave it unset", exit_code=75)
    assert_one_line_error(result, f"sweep folder {sweep} is in use: another prune-cli process is running that sweep; let it finish, "
                                  f"or stop it (Ctrl-C leaves its running jobs with a checkpoint) and then `prune-cli adapt --resume {sweep}`",
                          exit_code=75)
    assert folder_snapshot(sweep) == before and not (sweep / "seed2").exists()
    again = run_cli("adapt", "--resume", "sweep")  # the other process gone, and this one gave the folder back after each sweep
    assert again.exit_code == 0, again.output
    assert not _seen_held_from_another_process(sweep) and not _seen_held_from_another_process(sweep / "seed1")  # given back at the end
    assert run_cli("adapt", "--resume", "sweep").output.count("finished already") == 2


def test_a_continued_sweep_leaves_a_job_resumed_elsewhere_alone_and_runs_it_next_time(in_tmp: Path, tiny_model_dir: Path,
                                                                                       monkeypatch: pytest.MonkeyPatch):
    """With `adapt --resume sweep/seed1` going on in one terminal, `adapt --resume sweep` in another
    ran seed1 a second time in the same folder. Now that job is listed as failed, in use, its error
    recorded in the sweep folder (a failed.json in the run's own would mark the other process's run
    failed); the other job runs; the next continuation runs seed1 and lists no stale failure."""
    from conftest import folder_snapshot, held_by_another_process

    _stop_a_sweep(tiny_model_dir, monkeypatch)
    job = in_tmp / "sweep" / "seed1"
    before = folder_snapshot(job)
    with held_by_another_process(job):
        result = run_cli("adapt", "--resume", "sweep")
    assert result.exit_code == 2, result.output
    last = [line for line in result.output.splitlines() if line.startswith("error:")][-1]
    assert last.startswith(f"error: 1 sweep job(s) failed: {job}, job 0 (its folder is in use by another process; error in "), last
    assert folder_snapshot(job) == before
    assert (in_tmp / "sweep" / "seed2" / rundir.METRICS).is_file()
    again = run_cli("adapt", "--resume", "sweep")
    assert again.exit_code == 0, again.output
    assert resumed_at(job) == {"phase": "prune", "steps_done": 2}


def test_a_folder_is_held_once_per_process_and_given_back_with_its_last_hold(tmp_path: Path):
    """Re-entrant within a process (`adapt --resume` holds its run before the run asks again);
    another process sees it held until the last hold is given back."""
    from prune_cli import folder_lock

    outer = folder_lock.hold(tmp_path, "in use")
    inner = folder_lock.hold(tmp_path, "in use")
    assert not folder_lock.held_elsewhere(tmp_path)  # this process's own hold
    inner()
    assert _seen_held_from_another_process(tmp_path)
    outer()
    assert not _seen_held_from_another_process(tmp_path)
