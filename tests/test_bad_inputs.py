"""Bad input through the real CLI: one line naming the problem and the fix, exit 2, no traceback."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import FIXTURE_GLUE, assert_one_line_error, forget_digests, only_run_dir, run_cli, tiny_overrides

from prune_cli import rundir
from prune_cli.errors import UserError


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--task", "sst3"], ["unknown task 'sst3'", "choose from"]),
        (["--method", "lottery"], ["unknown method 'lottery'", "adapt_by_pruning"]),
        (["model=gpt9"], ["unknown model 'gpt9'", "minilm"]),
        (["--sparsity", "1.5"], ["outside [0, 1)"]),
        (["--sparsity", "1"], ["outside [0, 1)"]),
        (["--sparsity", "lots"], ["not a number"]),
        (["--model", "/no/such/model/dir"], ["model folder /no/such/model/dir does not exist"]),
        (["--model", str(FIXTURE_GLUE / "SST-2" / "dev.tsv")], ["SST-2/dev.tsv is a file, not a folder"]),  # it said "does not exist"
        (["task=="], ["invalid override"]),
        # an unknown flag reaches Hydra's parser as an override: it said "invalid override: LexerNoViableAltException: --cfg"
        (["--cfg", "job"], ["unknown option '--cfg' (--help lists the command's options)", "`prune-cli show-config` prints the composed config"]),
        (["--sparsty", "0.5"], ["unknown option '--sparsty' (--help lists the command's options)"]),
        # Hydra's own groups: its options as one list, without the config search path
        (["hydra/launcher=nope"], ["Could not find 'hydra/launcher/nope'; Available options in 'hydra/launcher': basic, joblib"]),
        (["method.not_a_key=3"], ["no config key 'method.not_a_key'", "show-config"]),
        (["+method.t_smal=0.5"], ["no config key 'method.t_smal'", "did you mean 'method.t_small'?"]),
        (["+method.round_steps=3"], ["would never be read", "method=imp"]),
        (["trainer.device=tpu"], ["trainer.device='tpu' is not supported", "cuda:N"]),
        (["trainer.precision=fp8"], ["trainer.precision='fp8'", "bf16"]),
        (["--seed", "abc"], ["seed='abc' must be an integer"]),
        (["method.theta_lr=fast"], ["method.theta_lr='fast' must be a number > 0"]),
        (["mask.exclude=['[']"], ["mask.exclude pattern '[' is not a regular expression"]),
        (["--sparsity", "0.5,0.9"], ["add -m/--multirun"]),
        (["head.pooling=max"], ["head.pooling='max' is not known", "cls, mean"]),
        (["method.init=magnitud"], ["method.init='magnitud' is not known", "normal, magnitude"]),
        (["method.gamma_schedule=cosine"], ["method.gamma_schedule='cosine' is not known", "constant, adaptive"]),
        (["method.theta_optimizer=lion"], ["method.theta_optimizer='lion' is not known", "adam, adamw, sgd"]),
        (["head.optimizer=Adam"], ["head.optimizer='Adam' is not known", "adam, adamw, sgd"]),
        (["--method", "finetune", "method.optimizer=lion"], ["method.optimizer='lion' is not known"]),
        (["--method", "magnitude", "method.scope=per_tensor"], ["method.scope='per_tensor' is not known", "global, per_layer"]),
        (["method.head_warmup_fraction=0.6"], ["head_warmup_fraction=0.6", "prune_fraction=0.5", "0 <= head_warmup_fraction < prune_fraction"]),
        (["method.warmup_fraction=0.5"], ["method.warmup_fraction=0.5", "prune_fraction - head_warmup_fraction = 0.5"]),
        (["method.theta_beta1=1.0"], ["method.theta_beta1=1.0 is outside [0, 1)", "method.theta_beta1=0.99"]),
        (["method.theta_beta1=much"], ["method.theta_beta1='much' is not a number"]),
        (["method.hold_fraction=0.6"], ["method.hold_fraction=0.6", "1 - prune_fraction = 0.5"]),
        (["method.hold_fraction=-0.1"], ["method.hold_fraction=-0.1", "1 - prune_fraction = 0.5"]),
        (["method.hold_fraction=0.3", "method.no_recovery=true"], ["method.hold_fraction=0.3 needs", "method.no_recovery=false"]),
        (["method.hold_fraction=0.3", "method.gamma_schedule=constant"], ["method.hold_fraction=0.3 needs", "method.gamma_schedule=adaptive"]),
        (["method.hold_fraction=0", "method.hold_theta_lr=2e-5"], ["method.hold_theta_lr=2e-05 needs method.hold_fraction > 0"]),
        # the hold is the default: what cannot hold says how to switch it off
        (["method.no_recovery=true"], ["needs method.gamma_schedule=adaptive and method.no_recovery=false", "method=adapt_by_pruning_stop_at_s"]),
        (["method.prune_fraction=0.8"], ["method.hold_fraction=0.4 must be in [0, 1 - prune_fraction = 0.2]", "method.hold_fraction=0"]),
        (["method.hold_fraction=0.3", "method.hold_theta_lr=0"], ["method.hold_theta_lr=0 must be"]),
        (["task.label_names=[good]"], ["task 'sst2': label_names=['good'] must name each of labels=['0', '1'] once"]),
        (["task.label_names=[good,good]"], ["label_names=['good', 'good'] must name each", "each name different"]),
        (["--task", "stsb", "+task.label_names=[low]"], ["task 'stsb': label_names=['low'] is set, but the task is a regression"]),
        # the job ran inside its run directory, and a relative data.dir or --model was looked for there
        (["hydra.job.chdir=true"], ["hydra.job.chdir=true is not supported", "reads relative paths (data.dir, --model) from the folder it is launched in; drop it"]),
        (["-m", "seed=1,2", "hydra.job.chdir=true"], ["hydra.job.chdir=true is not supported"]),
        # the run trained, and left a folder no command could read ("missing .hydra/config.yaml")
        (["hydra.output_subdir=null"], ["hydra.output_subdir=null is not supported: every prune-cli command reads a run's config "
                                        "from its .hydra folder"]),
        (["-m", "seed=1,2", "hydra.output_subdir=meta"], ["hydra.output_subdir=meta is not supported"]),
        # run.log's handler left without its class: Hydra's traceback as the job started
        (["hydra/job_logging=disabled"], ["hydra/job_logging=disabled is not supported", "+hydra.job_logging.handlers.console.level=WARNING"]),
        # a job-time value cannot make chdir safe: ${hydra.job.num} is 0 for the first job, 1 for the next
        (["-m", "seed=1,2", "hydra.job.chdir=${hydra.job.num}"], ["hydra.job.chdir=${hydra.job.num} is not supported"]),
        # passed the dry run, then OmegaConf's traceback as the run started
        (["hydra.verbose=${oops}"], ["hydra.verbose=${oops} cannot be resolved: Interpolation key 'oops' not found"]),
        (["-m", "seed=1,2", "hydra.sweep.dir=${oops}"], ["hydra.sweep.dir=${oops} cannot be resolved"]),
        # Hydra's traceback in every command ("Unexpected type for root: NoneType")
        (["-m", "hydra.sweeper.params.seed=1,2"], ["'hydra.sweeper.params.seed=1,2': hydra.sweeper.params is the grid an experiment file "
                                                  "lists", "its own override (-m seed=1,2)"]),
        (["hydra.sweeper.params={seed:1}"], ["hydra.sweeper.params is the grid an experiment file lists"]),
        # a traceback of ours as the sweeper was read
        (["-m", "seed=1,2", "hydra.sweeper=null"], ["hydra.sweeper=null leaves Hydra without a sweeper", "hydra/sweeper=NAME (installed: basic"]),
        # the sweep folder made, then Hydra's traceback: "got an unexpected keyword argument 'n_jobs'"
        (["-m", "seed=1,2", "+hydra.launcher.n_jobs=2"], ["hydra.launcher.n_jobs is not a setting of the basic launcher (BasicLauncher takes "
                                                         "no settings)", "hydra/launcher=NAME (installed: basic, joblib"]),
        (["-m", "seed=1,2", "hydra.launcher._target_=my.Launcher"], ["hydra.launcher._target_=my.Launcher is not a Hydra plugin"]),
        (["-m", "seed=1,2", "hydra.launcher._target_=hydra_plugins.nope.Launcher"],
         ["hydra.launcher._target_=hydra_plugins.nope.Launcher cannot be imported"]),
        # joblib's own checks, which it ran only as the sweep started (the sweep folder made, then its traceback)
        (["-m", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0"], ["hydra.launcher (joblib): n_jobs == 0 in Parallel has no meaning"]),
        (["-m", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.prefer=xyz"], ["hydra.launcher (joblib): prefer=xyz is not a valid backend hint"]),
        # the sweep ran unheld (a second --resume of it could run beside it), with warnings from Hydra
        (["-m", "seed=1,2", "hydra.callbacks.sweep_watch=null"], ["hydra.callbacks.sweep_watch is prune-cli's own callback",
                                                                 "+hydra.callbacks.NAME={_target_: ...}"]),
        (["-m", "seed=1,2", "~hydra.callbacks.sweep_watch"], ["hydra.callbacks.sweep_watch is prune-cli's own callback"]),
        # Hydra's traceback as the launch began
        (["+hydra.callbacks.mine._target_=my.Callback"], ["hydra.callbacks.mine._target_=my.Callback cannot be imported"]),
        (["+hydra.callbacks.mine={every:1}"], ["hydra.callbacks.mine names no _target_"]),
        # logging's dictConfig failed once Hydra had made the run directory: its traceback, and the empty folder left
        (["+hydra.job_logging.handlers.console.level=warning"], ["hydra.job_logging.handlers.console.level=warning is not a logging level",
                                                                 "WARNING"]),
        (["hydra.hydra_logging.root.level=abc"], ["hydra.hydra_logging.root.level=abc is not a logging level"]),
        (["hydra.job_logging.root.handlers=[console,nope]"], ["hydra.job_logging.root.handlers names 'nope'", "(it has: console, file)"]),
        (["hydra.job_logging.handlers.console.formatter=plain"], ["hydra.job_logging.handlers.console.formatter=plain is not defined"]),
        (["hydra.job_logging.handlers.console.class=my.Handler"], ["hydra.job_logging.handlers.console.class=my.Handler cannot be imported"]),
        (["hydra.job_logging.version=2"], ["hydra.job_logging.version=2 is not supported: logging's dictConfig knows version 1 only"]),
        (["hydra.job_logging.formatters.simple.format=abc"], ["hydra.job_logging.formatters.simple is not a format logging takes: "
                                                              "Invalid format 'abc'"]),
        (["hydra.hydra_logging.handlers.console.class=abc"], ["hydra.hydra_logging.handlers.console.class=abc is not a logging handler class"]),
        (["hydra.job_logging.handlers.file.filename=null"], ["hydra.job_logging.handlers.file.filename=null is not supported",
                                                             "each run writes its run.log"]),
        # Hydra's assertion as it configured logging
        (["hydra.verbose=null"], ["hydra.verbose=null is not supported", "hydra.verbose=[prune_cli,hydra]"]),
        # Hydra's line says which override; its cause says why
        (["hydra.mode=abc"], ["Error merging override hydra.mode=abc (Invalid value 'abc', expected one of [RUN, MULTIRUN])"]),
        # a Hydra setting is not one of ours: no "did you mean" among our keys, and Hydra's own hint
        (["hydra.job.env_set.A=1"], ["Could not override 'hydra.job.env_set.A'", "+hydra.job.env_set.A=1"]),
    ],
)
def test_adapt_rejects_bad_options(in_tmp: Path, args: list[str], fragments: list[str]):
    assert_one_line_error(run_cli("adapt", *args), *fragments)
    assert not (in_tmp / "outputs").exists(), "nothing may be written for a rejected command"


def test_debug_shows_the_traceback_instead(in_tmp: Path):
    with pytest.raises(UserError):
        run_cli("adapt", "--task", "sst3", "--debug")


def test_model_that_is_not_a_bert_encoder(in_tmp: Path, tmp_path_factory):
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path_factory.mktemp("gpt2")
    GPT2Model(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=50)).save_pretrained(folder)
    result = run_cli("adapt", *tiny_overrides(folder))
    assert_one_line_error(result, "needs a BERT-family encoder")
    assert not (in_tmp / "outputs").exists(), "a refused run leaves no empty run directory"


def _without_tokenizer(folder: Path) -> None:
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)


def _with_a_larger_tokenizer(folder: Path) -> None:
    from transformers import BertTokenizerFast

    _without_tokenizer(folder)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"word{i}" for i in range(400))]) + "\n")
    BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(folder)


@pytest.mark.parametrize(("change", "fragments"), [
    # model.save_pretrained alone: transformers made a tokenizer of the 5 special tokens, and the run
    # trained and scored on [UNK]s without a word
    (_without_tokenizer, ["has no tokenizer vocabulary (no vocab.txt or tokenizer.json beside its weights)", "would read every word as [UNK]"]),
    # it was an IndexError on the first batch
    (_with_a_larger_tokenizer, ["its tokenizer has 405 tokens but the model's word embeddings have", "the tokenizer is another model's"]),
])
def test_a_model_folder_whose_tokenizer_cannot_feed_it(in_tmp: Path, tiny_model_dir: Path, change, fragments: list[str]):
    folder = shutil.copytree(tiny_model_dir, in_tmp / "model")
    change(folder)
    assert_one_line_error(run_cli("adapt", *tiny_overrides(folder)), *fragments)
    assert not (in_tmp / "outputs").exists(), "a refused run leaves no empty run directory"


def test_a_model_with_one_token_type_takes_single_sentences_only(in_tmp: Path, tiny_model_dir: Path):
    """type_vocab_size=1 beside a BERT tokenizer: a pair's second sentence is type 1 (an IndexError
    on the first batch); a single-sentence task never uses type 1 and runs."""
    import torch
    from transformers import BertConfig, BertModel

    folder = shutil.copytree(tiny_model_dir, in_tmp / "model")
    config = BertConfig.from_pretrained(folder)
    config.type_vocab_size = 1
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    assert_one_line_error(run_cli("adapt", "--task", "mrpc", *tiny_overrides(folder)),
                          "task 'mrpc' pairs two sentences, and this tokenizer marks the second with token type 1, "
                          "but the model has 1 token type embedding(s)")
    assert run_cli("adapt", "--task", "sst2", *tiny_overrides(folder)).exit_code == 0


@pytest.mark.parametrize(("args", "message"), [
    (["hydra.run.dir="], "hydra.run.dir is empty; name a folder for it, or leave it unset for a new one under outputs/"),
    (["-m", "seed=1,2", "hydra.sweep.dir="], "hydra.sweep.dir is empty; name a folder for it"),
    (["model.name_or_path="], "model.name_or_path is empty; name a Hugging Face model or a local folder (--model)"),
    # Hydra reads null as None, which passed the checks (as the hub name "None") and ended the run in a traceback
    (["model.name_or_path=null"], "model.name_or_path is null; name a Hugging Face model or a local folder (--model)"),
    # every job in the sweep folder itself: the first ran there, beside multirun.yaml, and each later one failed as its clash
    (["-m", "seed=1,2", "hydra.sweep.dir=sweep", "hydra.sweep.subdir="],
     "hydra.sweep.subdir= puts every job of the sweep in the sweep folder itself, beside its multirun.yaml and in one another's way; "
     "give each job a folder of its own, e.g. hydra.sweep.subdir=seed${seed}, or leave it unset"),
    (["-m", "seed=1,2", "hydra.sweep.dir=sweep", "hydra.sweep.subdir=."], "hydra.sweep.subdir=. puts every job of the sweep in the sweep folder"),
    # two jobs in one folder: the first ran, the second failed there as its turn came
    (["-m", "--method", "magnitude,random", "hydra.sweep.dir=sweep", "hydra.sweep.subdir=${task.name}"],
     "hydra.sweep.subdir=${task.name} gives jobs 0 and 1 (method=magnitude and method=random) the same folder sst2; include what tells "
     "them apart, such as the job's number (${hydra.job.num}), or leave it unset"),
    # runs written where the sweep's runs are not read from
    (["-m", "seed=1,2", "hydra.sweep.dir=sweep", "hydra.sweep.subdir=../seed${seed}"],
     "hydra.sweep.subdir=../seed${seed} puts job 0's folder at ../seed1, outside the sweep folder sweep"),
    # Hydra's bare AssertionError as the sweep began
    (["-m", "seed=1,2", "hydra.sweeper.max_batch_size=0"], "hydra.sweeper.max_batch_size=0 must be a whole number > 0"),
])
def test_an_empty_folder_is_refused_not_read_as_this_one(in_tmp: Path, tiny_model_dir: Path, args: list[str], message: str):
    """An unset shell variable (`hydra.run.dir=$OUT`) is ''. As a path that is the current folder:
    the run wrote its results there, beside whatever the folder held; `model.name_or_path=` tried
    to load '.' as a model ("Unrecognized model in .")."""
    assert_one_line_error(run_cli("adapt", *tiny_overrides(tiny_model_dir, *args)), message)
    assert list(in_tmp.iterdir()) == []


def test_glue_folder_without_the_task(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    result = run_cli("adapt", "--task", "rte", *tiny_overrides(tiny_model_dir, f"data.dir={tmp_path}"))
    assert_one_line_error(result, f"no folder {tmp_path / 'RTE'}", "data.dir", "GLUE_DIR")
    assert not (in_tmp / "outputs").exists(), "a refused run leaves no empty run directory"


def test_malformed_row_names_file_and_line(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    shutil.copytree(FIXTURE_GLUE / "SST-2", tmp_path / "glue" / "SST-2")
    train = tmp_path / "glue" / "SST-2" / "train.tsv"
    train.write_text(train.read_text() + "a row without a label\n")
    result = run_cli("adapt", *tiny_overrides(tiny_model_dir, f"data.dir={tmp_path / 'glue'}"))
    assert_one_line_error(result, f"{train}:26: malformed row")
    assert not (in_tmp / "outputs").exists(), "a refused run leaves no empty run directory"


def test_empty_training_set(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    shutil.copytree(FIXTURE_GLUE / "SST-2", tmp_path / "glue" / "SST-2")
    (tmp_path / "glue" / "SST-2" / "train.tsv").write_text("sentence\tlabel\n")
    result = run_cli("adapt", *tiny_overrides(tiny_model_dir, f"data.dir={tmp_path / 'glue'}"))
    assert_one_line_error(result, "has no examples")
    assert not (in_tmp / "outputs").exists(), "a refused run leaves no empty run directory"


def test_empty_dev_set_is_refused_before_training(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    """It was an IndexError from the tokenizer, after the model had loaded, naming no file."""
    shutil.copytree(FIXTURE_GLUE / "SST-2", tmp_path / "glue" / "SST-2")
    dev = tmp_path / "glue" / "SST-2" / "dev.tsv"
    dev.write_text("sentence\tlabel\n")
    result = run_cli("adapt", *tiny_overrides(tiny_model_dir, f"data.dir={tmp_path / 'glue'}"))
    assert_one_line_error(result, f"task 'sst2': the dev set ({dev}) has no examples")
    assert not (in_tmp / "outputs").exists(), "a refused run leaves no empty run directory"


def test_a_refused_run_removes_only_what_it_created(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    """Beside a finished run, a refused one's folders go and the finished run stays whole; a run
    dir the user named that was there before stays too (the command did not create it)."""
    assert run_cli("adapt", "--task", "rte", *tiny_overrides(tiny_model_dir)).exit_code == 0
    finished = only_run_dir(in_tmp / "outputs")
    before = {p: p.read_bytes() for p in (in_tmp / "outputs").rglob("*") if p.is_file()}
    refused = run_cli("adapt", "--task", "rte", *tiny_overrides(tiny_model_dir, f"data.dir={tmp_path / 'nowhere'}"))
    assert_one_line_error(refused, "no folder")
    assert {p: p.read_bytes() for p in (in_tmp / "outputs").rglob("*") if p.is_file()} == before
    assert only_run_dir(in_tmp / "outputs") == finished

    named = in_tmp / "mine"
    named.mkdir()
    (named / "notes.txt").write_text("mine")
    refused = run_cli("adapt", "--task", "rte", *tiny_overrides(tiny_model_dir, f"data.dir={tmp_path / 'nowhere'}", f"hydra.run.dir={named}"))
    assert_one_line_error(refused, "no folder")
    assert (named / "notes.txt").read_text() == "mine"


def test_existing_run_dir_is_never_overwritten(in_tmp: Path, tiny_model_dir: Path):
    assert run_cli("adapt", *tiny_overrides(tiny_model_dir)).exit_code == 0
    run_dir = only_run_dir(in_tmp / "outputs")
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = run_cli("adapt", *tiny_overrides(tiny_model_dir, f"hydra.run.dir={run_dir}"))
    assert_one_line_error(result, "already holds results", "never overwriting")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_unwritable_output_folder(in_tmp: Path, tiny_model_dir: Path):
    (in_tmp / "a-file").write_text("")
    result = run_cli("adapt", *tiny_overrides(tiny_model_dir, f"hydra.run.dir={in_tmp / 'a-file' / 'run'}"))
    assert_one_line_error(result, "cannot create the run directory", "not writable")


def test_a_run_from_a_read_only_folder(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from conftest import pretend_read_only

    pretend_read_only(monkeypatch, in_tmp)
    result = run_cli("adapt", *tiny_overrides(tiny_model_dir))
    assert_one_line_error(result, "cannot create the run directory outputs/sst2/", f"{in_tmp} is not writable (Read-only file system)",
                          "run from a writable folder or set hydra.run.dir=<writable path>")


def test_a_sweep_from_a_read_only_folder(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Hydra makes the sweep's folder before any job: it was Hydra's OSError traceback."""
    from conftest import pretend_read_only

    pretend_read_only(monkeypatch, in_tmp)
    result = run_cli("adapt", "-m", "seed=1,2", *tiny_overrides(tiny_model_dir))
    assert_one_line_error(result, "cannot create the sweep folder outputs/multirun/", f"{in_tmp} is not writable (Read-only file system)",
                          "run from a writable folder or set hydra.sweep.dir=<writable path>")


@pytest.mark.parametrize(("sweep", "what", "key"), [(False, "the run directory", "hydra.run.dir"), (True, "the sweep folder", "hydra.sweep.dir")])
def test_a_run_or_sweep_launched_onto_a_full_disk_is_one_line(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                              sweep: bool, what: str, key: str):
    """A full disk still makes folders, so the write probe passed, and Hydra's first write (the
    job's config, or the sweep's multirun.yaml) ended in its OSError traceback."""
    from conftest import pretend_disk_full

    pretend_disk_full(monkeypatch, in_tmp)
    result = run_cli("adapt", *(["-m", "seed=1,2"] if sweep else []), *tiny_overrides(tiny_model_dir, f"{key}=out/here"))
    assert_one_line_error(result, f"cannot create {what} out/here: No space left on device on {in_tmp}; free some space, "
                                  f"or set {key}=<a folder on another disk>")
    assert list(in_tmp.iterdir()) == []  # the probe went with its answer


@pytest.fixture()
def finished_run(in_tmp: Path, tiny_model_dir: Path) -> Path:
    assert run_cli("adapt", *tiny_overrides(tiny_model_dir)).exit_code == 0
    return only_run_dir(in_tmp / "outputs")


def test_what_the_system_refuses_is_one_line_that_says_what_to_do(finished_run: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    """An OSError a command meets is its path and its permissions to check, except a full disk (or
    quota), which no path or permission mends: that line says to free space or write elsewhere."""
    assert_one_line_error(run_cli("apply", str(finished_run), "--file", str(in_tmp)),
                          f"error: Is a directory ({in_tmp}); check the path and its permissions")

    def full(path: Path, write) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(rundir, "atomic_write", full)
    result = run_cli("analyze", "topology", str(finished_run), "--out", str(in_tmp / "topology"))
    assert_one_line_error(result, f"error: No space left on device ({in_tmp / 'topology'}", "): free some space, or write elsewhere")
    assert "permissions" not in result.output


def _twin(run: Path) -> Path:
    """A second run for `analyze overlap`, which compares distinct runs: a copy beside `run`, made
    where `run` is a folder (as broken as `run` is), else a path as missing as `run`."""
    twin = run.with_name(f"{run.name}-twin")
    if run.is_dir() and not twin.exists():
        shutil.copytree(run, twin)
    return twin


# Every command that reads a run dir, as (name, args for a run dir); `out` is a fresh folder.
READERS = {
    "evaluate": lambda run, out: ["evaluate", str(run)],
    "export": lambda run, out: ["export", str(run), "--out", str(out)],
    "apply": lambda run, out: ["apply", str(run), "--text", "a fine film"],
    "predict": lambda run, out: ["predict", str(run), "--out", str(out)],
    "analyze topology": lambda run, out: ["analyze", "topology", str(run), "--out", str(out)],
    "analyze overlap": lambda run, out: ["analyze", "overlap", str(run), str(_twin(run)), "--out", str(out)],
    "analyze sensitivity": lambda run, out: ["analyze", "sensitivity", str(run), "--steps", "2", "--out", str(out)],
}
# The commands that read a mask alone, and so take mask files too (an imp round's).
MASK_FILE_READERS = ["analyze topology", "analyze overlap"]
# The commands that apply a mask to a loaded base model (analyses of mask files alone do not).
APPLIERS = ["evaluate", "export", "apply", "predict", "analyze sensitivity"]


@pytest.mark.parametrize(("command", "args"), [(["evaluate"], []), (["predict"], ["--out", "preds"]), (["export"], ["--out", "hf", "--check"]),
                                             (["analyze", "sensitivity"], ["--steps", "2"])])
def test_a_reader_without_the_data_names_its_own_flag(finished_run: Path, command: list[str], args: list[str]):
    """The data error tells a reader of a finished run about --data-dir, which it has, and not only
    about data.dir=..., which only adapt takes. `analyze sensitivity` had no --data-dir: a run made
    on another machine could not be analysed without editing its config."""
    result = run_cli(*command, str(finished_run), *args, "--data-dir", "no-glue-here")
    flag = ("point --data-dir at a folder that has SST-2/test.tsv" if command == ["predict"]
            else "--data-dir (evaluate, predict, export --check, analyze sensitivity)")
    assert_one_line_error(result, "no-glue-here/SST-2", flag)
    if command == ["analyze", "sensitivity"]:
        shutil.copytree(FIXTURE_GLUE, finished_run.parent / "other-glue")
        result = run_cli(*command, str(finished_run), *args, "--data-dir", str(finished_run.parent / "other-glue"), "--out", "sens")
        assert result.exit_code == 0 and Path("sens/sensitivity.csv").is_file(), result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("command", ["evaluate", "analyze sensitivity"])
def test_a_run_made_for_a_gpu_is_read_on_a_cpu_through_device(finished_run: Path, command: str):
    """A run whose config says trainer.device=cuda, re-read on a machine without one: the error names
    --device, which these commands take (it said trainer.device=..., which only adapt takes), and
    `analyze sensitivity` takes --device too, checked for every run before any head is trained."""
    config = finished_run / ".hydra" / "config.yaml"
    config.write_text(re.sub(r"(?m)^  device: \w+$", "  device: cuda", config.read_text(), count=1))
    args = READERS[command](finished_run, finished_run.parent / "out")
    assert_one_line_error(run_cli(*args), "trainer.device=cuda but no CUDA GPU is visible; use auto or cpu", "--device for a command that reads")
    result = run_cli(*args, "--device", "cpu")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["evaluate", "apply", "predict"])
def test_a_run_given_twice_is_refused(finished_run: Path, command: str):
    """evaluate scored it twice, apply loaded it as two tasks (sst2 and sst2@<folder>), and predict
    said it "and" itself would write the same file; the analyses already refused it in these words."""
    relative = finished_run.relative_to(Path.cwd())  # the same run, spelled from the folder the command runs in
    twice = [str(finished_run), str(relative)]
    args = {"evaluate": ["evaluate", *twice], "apply": ["apply", *twice, "--text", "a fine film"],
            "predict": ["predict", *twice, "--out", str(finished_run.parent / "preds")]}[command]
    result = run_cli(*args)
    assert_one_line_error(result, f"{relative} is given twice (also as {finished_run}); give each run once")
    assert "re-scored" not in result.output and not (finished_run.parent / "preds").exists()


@pytest.mark.parametrize("command", list(READERS))
def test_a_folder_that_is_not_a_run_dir(in_tmp: Path, command: str):
    (in_tmp / "empty").mkdir()
    assert_one_line_error(run_cli(*READERS[command](in_tmp / "empty", in_tmp / "out")), str(in_tmp / "empty"))
    assert_one_line_error(run_cli(*READERS[command](in_tmp / "missing", in_tmp / "out")), "is not a directory")


def test_a_file_given_for_a_run_names_the_run_it_belongs_to(finished_run: Path, in_tmp: Path):
    """A run's mask.safetensors (or any file in it) given where its folder is wanted, as the
    design card's "evaluate a saved mask" invites: the error said only "is not a directory", for a
    file as for a typo; it now names the run directory to give, and says where nothing is there."""
    for command in [c for c in READERS if c != "analyze overlap"]:
        for inside in ("mask.safetensors", ".hydra/config.yaml"):
            given = finished_run / inside
            if command in MASK_FILE_READERS:  # a mask file is theirs to read; another file of the run names the run
                if inside != "mask.safetensors":
                    assert_one_line_error(run_cli(*READERS[command](given, in_tmp / "out")),
                                          f"{given} is no mask: it is a file of the run directory {finished_run}; give the run, or a mask "
                                          "file (mask.safetensors, or one of masks/)")
                continue
            assert_one_line_error(run_cli(*READERS[command](given, in_tmp / "out")),
                                  f"{given} is not a directory (a file of the run directory {finished_run}, which is what to give)")
        assert_one_line_error(run_cli(*READERS[command](in_tmp / "typo", in_tmp / "out")), "typo is not a directory (nothing is there)")
    assert_one_line_error(run_cli("adapt", "--resume", str(finished_run / "run.log")),
                          f"(a file of the run directory {finished_run}, which is what to give); --resume takes")
    assert not (in_tmp / "out").exists()


@pytest.mark.parametrize("command", [*READERS, "analyze curve", "analyze recovery", "adapt --resume"])
def test_an_override_given_where_a_run_is_wanted_says_what_to_do(in_tmp: Path, command: str):
    """`data.dir=...` or `trainer.device=cpu` after a run, as `adapt` takes them: the commands that
    read a run take only folders (and options of their own), and `--resume` keeps the stored config.
    The error said "data.dir=/data/glue is not a directory", which reads as a bad path."""
    override = Path("data.dir=/data/glue")
    args = {"analyze curve": ["analyze", "curve", str(override)], "analyze recovery": ["analyze", "recovery", str(override)],
            "adapt --resume": ["adapt", "--resume", str(override)]}.get(command) or READERS[command](override, in_tmp / "out")
    advice = ("--resume takes the run directory of a killed run, or a sweep's folder, and continues it with the config stored there"
              if command == "adapt --resume" else "only `prune-cli adapt` takes those: this command reads each run's settings from its folder")
    assert_one_line_error(run_cli(*args), f"{override} is not a directory: it reads as a config override; {advice}")
    missing = run_cli(*[str(in_tmp / "missing") if a == str(override) else a for a in args])
    assert_one_line_error(missing, "missing is not a directory")
    assert "config override" not in missing.output


@pytest.mark.parametrize("command", list(READERS))
def test_a_folder_of_runs_given_for_a_run_names_one_of_them(finished_run: Path, in_tmp: Path, command: str):
    """outputs/ (or a sweep's folder) where a run dir was wanted: the error says what to pass."""
    assert_one_line_error(run_cli(*READERS[command](in_tmp / "outputs", in_tmp / "out")),
                          "holds 1 finished run below it", f"e.g. {finished_run}")


@pytest.mark.parametrize("command", list(READERS))
@pytest.mark.parametrize(("keep", "digests"), [(0, True), (100, False)])
def test_a_truncated_mask(finished_run: Path, command: str, keep: int, digests: bool):
    """Told by its digest in metrics.json where the run recorded one, else as it fails to load."""
    mask = finished_run / "mask.safetensors"
    mask.write_bytes(mask.read_bytes()[:keep])
    if not digests:
        forget_digests(finished_run)
    assert_one_line_error(run_cli(*READERS[command](finished_run, finished_run.parent / "out")),
                          "is not the file this run wrote" if digests else "truncated or corrupt")


@pytest.mark.parametrize("command", list(READERS))
def test_a_pruning_run_whose_mask_was_deleted_is_never_scored_as_the_dense_model(finished_run: Path, command: str):
    """Every reader names the missing mask; the appliers used to score, export and serve the pretrained
    weights under the run's name."""
    (finished_run / "mask.safetensors").unlink()
    assert_one_line_error(run_cli(*READERS[command](finished_run, finished_run.parent / "out")), str(finished_run), "mask.safetensors is missing")


@pytest.mark.parametrize("command", APPLIERS)
def test_a_run_holding_another_kinds_weights_is_refused(finished_run: Path, command: str):
    """A pruning run dir with a fine-tuned encoder.safetensors in it (copied there by hand) was scored
    with those trained weights, not its mask."""
    (finished_run / "encoder.safetensors").write_bytes(b"not read")
    assert_one_line_error(run_cli(*READERS[command](finished_run, finished_run.parent / "out")),
                          "holds encoder.safetensors, which no run of adapt_by_pruning writes")


@pytest.mark.parametrize("command", ["evaluate", "export", "predict"])
def test_a_finetune_run_whose_trained_weights_were_deleted_is_never_scored_as_the_pretrained_model(in_tmp: Path, tiny_model_dir: Path, command: str):
    assert run_cli("adapt", "--method", "finetune", *tiny_overrides(tiny_model_dir)).exit_code == 0
    run = only_run_dir(in_tmp / "outputs")
    (run / "encoder.safetensors").unlink()
    assert_one_line_error(run_cli(*READERS[command](run, in_tmp / "out")), "finished run of finetune, but its encoder.safetensors is missing")


def _own_model_copy(tiny_model_dir: Path, folder: Path) -> Path:
    """A copy of the tiny model that a test may replace, as a model folder is replaced by a download
    or a hub name moves to a new revision."""
    return shutil.copytree(tiny_model_dir, folder)


def _nudge_base_weights(model_dir: Path) -> None:
    """Change one pretrained weight of the model in `model_dir`, shapes and names unchanged."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(model_dir / "model.safetensors"))
    name = next(n for n in sorted(weights) if n.endswith("LayerNorm.bias"))
    weights[name] = weights[name] + 0.5
    save_file(weights, str(model_dir / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.parametrize("command", APPLIERS[:4])
def test_a_feature_extraction_run_on_other_base_weights_is_refused(in_tmp: Path, tiny_model_dir: Path, command: str):
    """Feature extraction has no mask to carry the base model's hash: its head, trained on one model's
    features, was scored, exported and served over another model's (the folder replaced after the run)."""
    model = _own_model_copy(tiny_model_dir, in_tmp / "model")
    assert run_cli("adapt", "--method", "feature_extraction", *tiny_overrides(model)).exit_code == 0
    run = only_run_dir(in_tmp / "outputs")
    _nudge_base_weights(model)
    assert_one_line_error(run_cli(*READERS[command](run, in_tmp / "out")), f"{run} was made on base weights",
                          "but the model loaded has", "load the base model the run was made for")
    assert not (in_tmp / "out").exists()


@pytest.mark.parametrize("command", ["evaluate", "export", "predict"])
def test_a_finetune_run_needs_its_trained_weights_readable_and_of_the_loaded_model(in_tmp: Path, tiny_model_dir: Path, command: str):
    """A truncated encoder.safetensors was safetensors' traceback; one of another model's shapes (the
    base folder replaced by a wider model) a traceback from the first forward pass."""
    from transformers import BertConfig, BertModel

    model = _own_model_copy(tiny_model_dir, in_tmp / "model")
    assert run_cli("adapt", "--method", "finetune", *tiny_overrides(model)).exit_code == 0
    run = only_run_dir(in_tmp / "outputs")
    forget_digests(run)  # a run from before records held digests: its file is checked as it loads
    trained = (run / "encoder.safetensors").read_bytes()
    (run / "encoder.safetensors").write_bytes(trained[:100])
    assert_one_line_error(run_cli(*READERS[command](run, in_tmp / "out")), f"{run / 'encoder.safetensors'} cannot be read",
                          "it may be truncated or corrupt")
    (run / "encoder.safetensors").write_bytes(trained)
    wider = BertConfig.from_pretrained(model)
    wider.intermediate_size += 16
    BertModel(wider).save_pretrained(model)
    assert_one_line_error(run_cli(*READERS[command](run, in_tmp / "out")), f"{run / 'encoder.safetensors'} holds 'encoder.layer.0.",
                          f"of shape ({wider.intermediate_size - 16}", "load the base model the run was made for")
    assert not (in_tmp / "out").exists()


def _two_runs(in_tmp: Path, tiny_model_dir: Path, *extra: str) -> tuple[Path, Path]:
    """Two finished runs of the same settings but their seed: files that load into each other."""
    for seed in (1, 2):
        assert run_cli("adapt", *tiny_overrides(tiny_model_dir, f"seed={seed}", *extra), f"hydra.run.dir=seed{seed}").exit_code == 0
    return in_tmp / "seed1", in_tmp / "seed2"


@pytest.mark.parametrize("command", ["evaluate", "export", "apply", "predict"])
def test_a_head_copied_in_from_another_run_is_refused(in_tmp: Path, tiny_model_dir: Path, command: str):
    """Another run's head has the same shapes, so it loaded and was scored, exported and served under
    this run's name and record without a word (only evaluate's "same" column could show it)."""
    mine, other = _two_runs(in_tmp, tiny_model_dir)
    shutil.copyfile(other / rundir.HEAD, mine / rundir.HEAD)
    assert_one_line_error(run_cli(*READERS[command](mine, in_tmp / "out")), f"{mine / rundir.HEAD} is not the file this run wrote",
                          f"{rundir.METRICS} records", "put the run's own file back, or run the job again")
    assert not (in_tmp / "out").exists()


@pytest.mark.parametrize("command", [*READERS, "transfer"])
def test_a_mask_copied_in_from_another_run_is_refused(in_tmp: Path, tiny_model_dir: Path, command: str):
    mine, other = _two_runs(in_tmp, tiny_model_dir)
    shutil.copyfile(other / rundir.MASK, mine / rundir.MASK)
    args = (["adapt", "--method", "transfer", f"method.mask_run={mine}", *tiny_overrides(tiny_model_dir)] if command == "transfer"
            else READERS[command](mine, in_tmp / "out"))
    assert_one_line_error(run_cli(*args), f"{mine / rundir.MASK} is not the file this run wrote")
    assert not (in_tmp / "out").exists()


def test_a_trained_encoder_changed_after_the_run_is_refused_and_a_record_without_digests_is_read_as_before(in_tmp: Path, tiny_model_dir: Path):
    mine, other = _two_runs(in_tmp, tiny_model_dir, "--method", "finetune")
    own = (mine / rundir.ENCODER).read_bytes()
    shutil.copyfile(other / rundir.ENCODER, mine / rundir.ENCODER)
    assert_one_line_error(run_cli("evaluate", str(mine)), f"{mine / rundir.ENCODER} is not the file this run wrote")
    (mine / rundir.ENCODER).write_bytes(own)
    result = run_cli("evaluate", str(mine))
    assert result.exit_code == 0, result.output  # its own file back: read as it was written
    record = rundir.read_json_record(mine / rundir.METRICS)
    record[rundir.WRITTEN_DIGESTS][rundir.HEAD] = 7
    (mine / rundir.METRICS).write_text(json.dumps(record))
    assert_one_line_error(run_cli("evaluate", str(mine)), f"has 7 for '{rundir.HEAD}' under '{rundir.WRITTEN_DIGESTS}', not text; it was edited")
    forget_digests(mine)
    shutil.copyfile(other / rundir.ENCODER, mine / rundir.ENCODER)
    result = run_cli("evaluate", str(mine))
    assert result.exit_code == 0, result.output  # nothing recorded to compare: read as before


def test_a_run_records_the_digest_of_each_file_it_is_put_back_together_from(finished_run: Path):
    recorded = rundir.read_json_record(finished_run / rundir.METRICS)[rundir.WRITTEN_DIGESTS]
    assert set(recorded) == {rundir.MASK, rundir.HEAD, rundir.HISTORY}
    for name, digest in recorded.items():
        assert digest == hashlib.sha256((finished_run / name).read_bytes()).hexdigest()


def _retokenize(model_dir: Path, tiny_model_dir: Path, **settings) -> None:
    """Save the tiny model's tokenizer, with `settings` changed, into `model_dir` (weights unchanged)."""
    from transformers import BertTokenizerFast

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (model_dir / name).unlink(missing_ok=True)
    BertTokenizerFast.from_pretrained(tiny_model_dir, **settings).save_pretrained(model_dir)


@pytest.mark.parametrize("command", APPLIERS)
def test_a_run_whose_tokenizer_now_reads_text_otherwise_is_refused(in_tmp: Path, tiny_model_dir: Path, command: str):
    """Only the base weights were fingerprinted: a tokenizer replaced in the model folder (here: one
    that no longer lower-cases, so every capitalised word is [UNK]) was scored, exported, applied and
    analysed with, without a word."""
    model = _own_model_copy(tiny_model_dir, in_tmp / "model")
    assert run_cli("adapt", *tiny_overrides(model)).exit_code == 0
    run = only_run_dir(in_tmp / "outputs")
    _retokenize(model, tiny_model_dir, do_lower_case=False)
    assert_one_line_error(run_cli(*READERS[command](run, in_tmp / "out")), f"{run} was made with a tokenizer that reads text into other ids",
                          "load the base model and tokenizer the run was made with")
    assert not (in_tmp / "out").exists()


PINNED_TOKENIZER_HASH = "1344761dfa4cc196a21873c874fab7de3e1ce84042269d5cec06cf82c9c41dc0"


def test_the_tokenizer_fingerprint_is_pinned_and_sees_each_setting_that_changes_the_ids(tmp_path: Path):
    """Every finished run records `tokenizer_hash`, so a change to the probes or to how they are hashed
    would make every run made before refuse its own tokenizer: the hash of a fixed tokenizer is pinned
    here. Each setting that changes the ids (casing, accents, CJK) changes it."""
    from transformers import BertTokenizerFast

    from prune_cli.backbone import tokenizer_hash

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", ",", "world", "!", "it", "'", "s", "3", ".", "5", "##x",
             "better", "is", "this", "the", "same", "?", "yes", "cafe", "naive"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")

    def fingerprint(**settings) -> str:
        return tokenizer_hash(BertTokenizerFast(vocab=str(tmp_path / "vocab.txt"), **{"do_lower_case": True, **settings}))

    assert fingerprint() == PINNED_TOKENIZER_HASH
    variants = [fingerprint(do_lower_case=False), fingerprint(strip_accents=False), fingerprint(tokenize_chinese_chars=False)]
    assert len({PINNED_TOKENIZER_HASH, *variants}) == 4


def test_a_finetune_run_checks_its_tokenizer_too(in_tmp: Path, tiny_model_dir: Path):
    model = _own_model_copy(tiny_model_dir, in_tmp / "model")
    assert run_cli("adapt", "--method", "finetune", *tiny_overrides(model)).exit_code == 0
    _retokenize(model, tiny_model_dir, do_lower_case=False)
    assert_one_line_error(run_cli("evaluate", str(only_run_dir(in_tmp / "outputs"))), "was made with a tokenizer that reads text into other ids")


def test_a_tokenizer_saved_anew_that_reads_text_the_same_is_not_refused(in_tmp: Path, tiny_model_dir: Path):
    """The fingerprint is of behaviour, not files: the same tokenizer saved again, or kept as a bare
    vocab.txt (a slow tokenizer, no tokenizer.json), is the same tokenizer."""
    from prune_cli.backbone import tokenizer_hash
    from transformers import BertTokenizer, BertTokenizerFast

    model = _own_model_copy(tiny_model_dir, in_tmp / "model")
    assert run_cli("adapt", *tiny_overrides(model)).exit_code == 0
    run = only_run_dir(in_tmp / "outputs")
    _retokenize(model, tiny_model_dir)
    result = run_cli("evaluate", str(run))
    assert result.exit_code == 0, result.output
    assert "yes" in result.output
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (model / name).unlink(missing_ok=True)
    shutil.copy(tiny_model_dir / "vocab.txt", model / "vocab.txt")
    assert tokenizer_hash(BertTokenizer.from_pretrained(model)) == tokenizer_hash(BertTokenizerFast.from_pretrained(tiny_model_dir))
    result = run_cli("evaluate", str(run))
    assert result.exit_code == 0, result.output
    assert "yes" in result.output


@pytest.mark.parametrize("command", APPLIERS)
def test_a_run_whose_base_model_moved_names_model_and_loads_from_where_it_is_now(in_tmp: Path, tiny_model_dir: Path, command: str):
    """A run copied to another machine, or its model folder moved: each reader said "model folder X does
    not exist; pass a Hugging Face model name or a local folder", and none of them took one. Now each
    takes --model, which must be the same weights and tokenizer."""
    model = _own_model_copy(tiny_model_dir, in_tmp / "model")
    assert run_cli("adapt", *tiny_overrides(model)).exit_code == 0
    run = only_run_dir(in_tmp / "outputs")
    model.rename(in_tmp / "moved")
    assert_one_line_error(run_cli(*READERS[command](run, in_tmp / "out")), f"{run} was made on the model folder {model}, which is not there now",
                          "point --model at where that model is now")
    result = run_cli(*READERS[command](run, in_tmp / "out"), "--model", str(in_tmp / "moved"))
    assert result.exit_code == 0, result.output
    if command == "evaluate":
        assert "│ yes" in result.output and "│ no" not in result.output
    if command == "export":
        assert "A local model (`model`)" in (in_tmp / "out" / "README.md").read_text(), "the card names the run's own base"
    other = _own_model_copy(tiny_model_dir, in_tmp / "other")
    _nudge_base_weights(other)
    assert_one_line_error(run_cli(*READERS[command](run, in_tmp / "out2"), "--model", str(other)), "was learned on base weights")


def test_a_run_made_on_a_hub_model_is_read_without_the_hub_from_a_local_copy(finished_run: Path, in_tmp: Path, tiny_model_dir: Path):
    """A run made where the hub was reachable (its config names `org/bert`), read on a machine without
    it: the error says how to go on, and --model with a local copy of the same model does."""
    import subprocess
    import sys

    config = finished_run / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace(str(tiny_model_dir), "some-org/some-bert"))
    # a process of its own, offline from its start (huggingface_hub reads HF_HUB_OFFLINE when first imported)
    done = subprocess.run([sys.executable, "-m", "prune_cli.cli", "evaluate", str(finished_run)], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    [line] = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert line.startswith("error: cannot load a model config from 'some-org/some-bert': "), line  # then transformers' reason
    assert line.endswith("; without the hub, pass a local copy of that model with --model <folder>"), line
    result = run_cli("evaluate", str(finished_run), "--model", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    assert "│ yes" in result.output


def test_a_hub_name_spelt_like_a_model_config_names_the_config(monkeypatch: pytest.MonkeyPatch):
    """`--model MiniLM` is a hub name to transformers, which (offline here) fails after its retries
    with no word of the packaged `minilm`; the error now names it. A name near no config is said
    as before."""
    import transformers

    from prune_cli import backbone

    def offline(name, **kwargs):
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {name}.")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", offline)
    with pytest.raises(UserError) as error:
        backbone.load_backbone({"name_or_path": "MiniLM"})
    assert str(error.value).endswith("; without the hub, pass a local copy of that model with --model <folder>; "
                                     "did you mean --model minilm, the model config?")
    with pytest.raises(UserError) as error:
        backbone.load_backbone({"name_or_path": "some-org/some-bert"})
    assert str(error.value).endswith("; without the hub, pass a local copy of that model with --model <folder>")


def test_a_run_recorded_before_its_tokenizer_was_fingerprinted_is_still_read(finished_run: Path):
    """Runs made before metrics.json held `tokenizer_hash` (and the earliest, before
    `base_weights_hash_before`) have nothing to compare: they are read as they were."""
    _edit_record(finished_run, lambda record: (record.pop("tokenizer_hash"), record.pop("base_weights_hash_before")))
    result = run_cli("evaluate", str(finished_run))
    assert result.exit_code == 0, result.output
    assert "yes" in result.output


def test_predict_of_several_runs_writes_nothing_when_a_later_one_cannot_be_put_back_together(finished_run: Path, in_tmp: Path,
                                                                                              tiny_model_dir: Path):
    """The first run's file was written, and --out made, before the second run's mask was found to be
    for other base weights: half a submission, which a rerun into the same --out then refused."""
    assert run_cli("adapt", "--task", "cola", *tiny_overrides(tiny_model_dir), "hydra.run.dir=cola-run").exit_code == 0
    _rewrite_manifest(in_tmp / "cola-run", lambda manifest: {**manifest, "base_weights_hash": "f" * 64})
    assert_one_line_error(run_cli("predict", str(finished_run), str(in_tmp / "cola-run"), "--out", str(in_tmp / "out")),
                          "was learned on base weights ffffffffffff")
    assert not (in_tmp / "out").exists()


def test_a_finetune_run_holds_its_own_weights_so_a_replaced_base_does_not_matter(in_tmp: Path, tiny_model_dir: Path):
    """The other side of the check above: fine-tuning stores every encoder weight it is scored with, so
    new base weights of the same shapes do not change its score, and it is not refused."""
    model = _own_model_copy(tiny_model_dir, in_tmp / "model")
    assert run_cli("adapt", "--method", "finetune", *tiny_overrides(model)).exit_code == 0
    run = only_run_dir(in_tmp / "outputs")
    _nudge_base_weights(model)
    result = run_cli("evaluate", str(run))
    assert result.exit_code == 0, result.output
    assert "yes" in result.output and " no " not in result.output


def _rewrite_manifest(run: Path, change) -> None:
    """Rewrite the run's mask manifest through `change` (a dict -> any JSON value), bits unchanged, in
    a run whose record holds no digest of it (`forget_digests`): the manifest's own checks are what
    this reaches."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    path = run / "mask.safetensors"
    with safe_open(str(path), framework="numpy") as handle:
        manifest = json.loads(handle.metadata()["manifest"])
    save_file(load_file(str(path)), str(path), metadata={"manifest": json.dumps(change(manifest))})
    forget_digests(run)


def _edit_record(run: Path, change) -> None:
    """Rewrite the run's metrics.json through `change` (a dict edited in place), as a hand edit would."""
    import json

    record = json.loads((run / "metrics.json").read_text())
    change(record)
    (run / "metrics.json").write_text(json.dumps(record))


def _without_task(run: Path) -> None:
    from omegaconf import OmegaConf

    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    del config["task"]
    OmegaConf.save(config, run / ".hydra" / "config.yaml")


# A run's records edited or overwritten by hand: (how, the error's words). Each was a traceback
# (AttributeError: 'list' object has no attribute 'get', AssertionError, ConfigAttributeError, TypeError).
BROKEN_RECORDS = {
    "metrics.json a list": (lambda run: (run / "metrics.json").write_text("[]"),
                            "metrics.json holds a JSON list, not a prune-cli record (a JSON object); it was edited or overwritten"),
    "metrics.json not UTF-8": (lambda run: (run / "metrics.json").write_bytes(b"\xff\xfe{"), "metrics.json cannot be read"),
    # fields edited by hand: KeyError, AttributeError or ValueError tracebacks, in analyze sensitivity after its training
    "metrics.json without its score": (lambda run: _edit_record(run, lambda record: record.pop("main_metric_value")),
                                       "metrics.json has no 'main_metric_value'; it was edited or truncated"),
    "metrics.json with scores in a list": (lambda run: _edit_record(run, lambda record: record.update(metrics=[0.5])),
                                           "metrics.json has 'metrics': [0.5], not a JSON object; it was edited"),
    "metrics.json with a score as text": (lambda run: _edit_record(run, lambda record: record["metrics"].update(eval_accuracy="0.5")),
                                          "metrics.json has 'eval_accuracy': '0.5' under 'metrics', not a number; it was edited"),
    "metrics.json with the seed as text": (lambda run: _edit_record(run, lambda record: record.update(seed="two")),
                                           "metrics.json has 'seed': 'two', not a whole number; it was edited"),
    "metrics.json with the base weights' hash as a number": (lambda run: _edit_record(run, lambda record: record.update(base_weights_hash_before=7)),
                                                             "metrics.json has 'base_weights_hash_before': 7, not text; it was edited"),
    "config a list": (lambda run: (run / ".hydra" / "config.yaml").write_text("- 1\n- 2\n"),
                      "config.yaml holds a YAML list, not a run's config; it was edited or overwritten"),
    "config without task": (_without_task, "config.yaml is not a complete run config (it has no task); it was edited or truncated"),
    "config not YAML": (lambda run: (run / ".hydra" / "config.yaml").write_text("task:\n  name: [sst2\n  labels: 2\n"),
                        "config.yaml cannot be read: expected ',' or ']', but got ':' at line 3"),
    "config with an unresolvable path": (lambda run: (run / ".hydra" / "config.yaml").write_text(
        re.sub(r"(?m)^  dir: .*$", "  dir: ${nowhere}", (run / ".hydra" / "config.yaml").read_text(), count=1)),
        "config.yaml has a value that cannot be resolved here ('data.dir': Interpolation key 'nowhere' not found)"),
    "config with an unresolvable section": (lambda run: (run / ".hydra" / "config.yaml").write_text(
        re.sub(r"(?m)^trainer:$", "trainer: ${nowhere}\ntrainer_as_it_was:", (run / ".hydra" / "config.yaml").read_text(), count=1)),
        "config.yaml has a value that cannot be resolved here ('trainer': Interpolation key 'nowhere' not found)"),
    "config with an interpolation": (lambda run: (run / ".hydra" / "config.yaml").write_text(
        (run / ".hydra" / "config.yaml").read_text().replace("data:\n", "data:\n  oops: ${nowhere}\n", 1)),
        "config.yaml has a value that cannot be resolved here ('data.oops': Interpolation key 'nowhere' not found)"),
    "manifest a list": (lambda run: _rewrite_manifest(run, lambda manifest: [1, 2]),
                        "mask.safetensors has no prune-cli manifest; it is not a prune-cli mask file"),
    "manifest version a string": (lambda run: _rewrite_manifest(run, lambda manifest: {**manifest, "format_version": "2"}),
                                  "malformed manifest (format_version '2' is not a whole number); it was edited or is corrupt"),
    "manifest tensor without a shape": (lambda run: _rewrite_manifest(run, lambda manifest: {**manifest, "tensors": [{"name": "x", "kept": 1}]}),
                                        'malformed manifest (tensor entry {"name": "x", "kept": 1} lacks a name, a shape or a kept count)'),
}
# Which readers read each record: the others must still work.
READS = {"metrics.json": list(READERS),  # the record names the base weights a run was made on, and the digests of its files
         "config": ["evaluate", "export", "apply", "predict", "analyze sensitivity"],
         "manifest": list(READERS)}


@pytest.mark.parametrize("broken", list(BROKEN_RECORDS))
def test_a_run_record_that_is_not_what_prune_cli_wrote(finished_run: Path, broken: str):
    """Every reader of a run dir names the broken file in one line, and one that does not read it still works."""
    corrupt, message = BROKEN_RECORDS[broken]
    corrupt(finished_run)
    readers = READS[broken.split()[0]]
    for command in READERS:
        out = finished_run.parent / f"out-{command.replace(' ', '-')}"
        result = run_cli(*READERS[command](finished_run, out))
        if command in readers:
            assert_one_line_error(result, str(finished_run), message)
            assert not out.exists() or not any(out.iterdir()), (command, "wrote before it refused")
        else:
            assert result.exit_code == 0, (command, result.output)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda record: record.pop("seed"), "metrics.json has no 'seed'; it was edited or truncated"),
    (lambda record: record.update(seed="two"), "metrics.json has 'seed': 'two', not a whole number"),
    (lambda record: record.update(method_details=[1]), "metrics.json has 'method_details': [1], not a JSON object"),
    (lambda record: record["method_details"].update(recovered_share="x"),
     "metrics.json has 'recovered_share': 'x' under 'method_details', not a number"),
    (lambda record: record.pop("sparsity_realized"), "metrics.json has no 'sparsity_realized'"),
], ids=["seed deleted", "seed as text", "details a list", "share as text", "sparsity deleted"])
def test_analyze_recovery_names_a_record_edited_by_hand(finished_run: Path, edit, message: str):
    """`analyze recovery` reads metrics.json's fields and nothing else of a run: each of these edits was
    a KeyError, ValueError or AttributeError traceback (the share's only once the table was drawn)."""
    assert run_cli("analyze", "recovery", str(finished_run), "--out", str(finished_run.parent / "fine")).exit_code == 0
    _edit_record(finished_run, edit)
    out = finished_run.parent / "out"
    assert_one_line_error(run_cli("analyze", "recovery", str(finished_run), "--out", str(out)), str(finished_run), message)
    assert not (out / "recovery.csv").exists()


@pytest.mark.parametrize("field", ["num_kept", "train_examples"])
def test_export_names_a_record_without_what_its_model_card_reads(finished_run: Path, field: str):
    """The model card reads fields of metrics.json that scoring does not: without one, export stopped
    with a KeyError traceback. It is named before anything is written, and evaluate is not affected."""
    _edit_record(finished_run, lambda record: record.pop(field))
    out = finished_run.parent / "hf"
    assert_one_line_error(run_cli("export", str(finished_run), "--out", str(out), "--check"), f"metrics.json has no '{field}'")
    assert not out.exists() and not list(finished_run.parent.glob(".hf.*"))
    assert run_cli("evaluate", str(finished_run)).exit_code == 0


def test_resume_of_a_run_whose_config_lost_a_section(finished_run: Path):
    (finished_run / "metrics.json").unlink()  # as if killed before it finished
    _without_task(finished_run)
    assert_one_line_error(run_cli("adapt", "--resume", str(finished_run)), "config.yaml is not a complete run config (it has no task)")


def test_report_lists_a_run_with_a_broken_record(finished_run: Path, in_tmp: Path):
    """report carries on past such runs and lists them (a failed.json that is no object was a traceback too)."""
    failed = shutil.copytree(finished_run, in_tmp / "outputs" / "failed-run")
    (failed / "metrics.json").unlink()
    (failed / "failed.json").write_text('"out of memory"')
    (finished_run / "metrics.json").write_text("[]")
    result = run_cli("report", str(in_tmp / "outputs"), "--out", str(in_tmp / "report"))
    assert result.exit_code == 0, result.output
    assert "failed.json unreadable" in result.output
    assert "metrics.json holds a JSON list, not a prune-cli record" in " ".join(result.output.split())


@pytest.mark.parametrize("command", ["report", "analyze topology", "analyze overlap", "analyze sensitivity", "analyze recovery"])
def test_an_out_folder_that_is_a_file_is_refused_before_any_work(finished_run: Path, in_tmp: Path, command: str):
    """The commands whose --out is a folder say so at once, rather than fail with the OS's 'File
    exists' once they write (after minutes of head training, for sensitivity)."""
    (in_tmp / "a-file").write_text("kept")
    args = {"report": ["report", str(in_tmp / "outputs")],
            "analyze topology": ["analyze", "topology", str(finished_run)],
            "analyze overlap": ["analyze", "overlap", str(finished_run), str(finished_run)],
            "analyze sensitivity": ["analyze", "sensitivity", str(finished_run), "--steps", "2"],
            "analyze recovery": ["analyze", "recovery", str(finished_run)]}[command]
    result = run_cli(*args, "--out", str(in_tmp / "a-file"))
    assert_one_line_error(result, f"--out {in_tmp / 'a-file'} is a file; give a folder (created if missing)")
    assert (in_tmp / "a-file").read_text() == "kept" and "wrote" not in result.output


@pytest.mark.parametrize("command", APPLIERS)
def test_a_mask_for_another_task(finished_run: Path, command: str):
    from prune_cli import mask_format

    loaded = mask_format.read_manifest(finished_run / "mask.safetensors")
    config = finished_run / ".hydra" / "config.yaml"
    text = config.read_text()
    # Point the run at MRPC (a binary task with the same head shape): the mask says sst2.
    config.write_text(text.replace("name: sst2", "name: mrpc", 1).replace("glue_dir: SST-2", "glue_dir: MRPC", 1))
    assert loaded["task"] == "sst2"
    assert_one_line_error(run_cli(*READERS[command](finished_run, finished_run.parent / "out")), "was made for task 'sst2'")


@pytest.mark.parametrize("command", APPLIERS)
def test_a_mask_for_another_base_model(finished_run: Path, command: str):
    from prune_cli import mask_format

    loaded = mask_format.read_mask(finished_run / "mask.safetensors")
    mask_format.save_mask(finished_run / "mask.safetensors", loaded.masks, {**loaded.manifest, "base_weights_hash": "f" * 64})
    forget_digests(finished_run)  # as a run from before digests: the manifest's own check is what this reaches
    assert_one_line_error(run_cli(*READERS[command](finished_run, finished_run.parent / "out")), "was learned on base weights ffffffffffff")


def test_report_on_a_missing_folder(in_tmp: Path):
    assert_one_line_error(run_cli("report", str(in_tmp / "nope")), "nope is not a directory (nothing is there); pass outputs/ or a multirun folder")
    assert_one_line_error(run_cli("report", "data.dir=/data/glue"), "data.dir=/data/glue is not a directory: it reads as a config override; "
                          "only `prune-cli adapt` takes those")


def test_export_to_an_unwritable_folder(finished_run: Path, tmp_path: Path):
    (tmp_path / "a-file").write_text("")  # a file where a folder should be: fails even as root
    assert_one_line_error(run_cli("export", str(finished_run), "--out", str(tmp_path / "a-file" / "model")), "cannot write to")


@pytest.mark.parametrize("command", ["analyze topology", "analyze overlap"])
def test_analysis_output_to_an_unwritable_folder(finished_run: Path, tmp_path: Path, command: str):
    (tmp_path / "a-file").write_text("")
    assert_one_line_error(run_cli(*READERS[command](finished_run, tmp_path / "a-file" / "out")), "a-file")


@pytest.mark.parametrize("command", [["analyze", "topology"], ["analyze", "recovery"], ["analyze", "sensitivity", "--steps", "2"],
                                     ["analyze", "overlap"], ["report"]])
def test_runs_on_a_read_only_disk_are_read_and_the_output_refused_before_any_work(finished_run: Path, in_tmp: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch, command: list[str]):
    """Without --out an analysis writes beside its first run, and `report` into the folder it
    reads. With those on a read-only disk (results shared from elsewhere) each failed at its last
    step, naming a temporary file ('.topology.csv.gshleiy7.tmp'); sensitivity after training."""
    from conftest import pretend_read_only

    from prune_cli import sensitivity

    runs = [str(finished_run), str(_twin(finished_run))] if command[-1] == "overlap" else [str(finished_run)]
    target = in_tmp / "outputs" if command == ["report"] else finished_run
    pretend_read_only(monkeypatch, target)
    monkeypatch.setattr(sensitivity, "analyse", lambda *args, **kwargs: pytest.fail("trained before the output was checked"))
    result = run_cli(*command, *([str(target)] if command == ["report"] else runs))
    assert_one_line_error(result, f"cannot write to {target}: Read-only file system; give --out a folder you can write to")
    if command[-1] == "topology":  # elsewhere, the same runs are read and the analysis written
        assert run_cli(*command, *runs, "--out", str(in_tmp / "analyses")).exit_code == 0
        assert (in_tmp / "analyses" / "topology.csv").exists()


@pytest.mark.parametrize("command", ["predict", "export", "apply"])
def test_an_out_in_a_read_only_folder_is_refused_before_any_run_is_read(finished_run: Path, in_tmp: Path,
                                                                       monkeypatch: pytest.MonkeyPatch, command: str):
    """predict read every run's data and scored it first; export and apply loaded the model first."""
    from conftest import pretend_read_only

    from prune_cli import api, export, predictions

    shared = in_tmp / "shared"
    shared.mkdir()
    pretend_read_only(monkeypatch, shared)
    monkeypatch.setattr(predictions, "predict_runs", lambda *args, **kwargs: pytest.fail("read the runs before the output was checked"))
    monkeypatch.setattr(export, "load_encoder", lambda *args, **kwargs: pytest.fail("loaded the model before the output was checked"))
    monkeypatch.setattr(api, "TaskBank", lambda *args, **kwargs: pytest.fail("loaded the model before the output was checked"))
    result = run_cli(command, str(finished_run), "--out", str(shared / "out"), *(["--text", "a fine film"] if command == "apply" else []))
    where = f"{shared / 'out'} ({shared} is where it would be made)" if command == "predict" else str(shared)
    fix = "give --out a file in a folder you can write to" if command == "apply" else "give --out a folder you can write to"
    assert_one_line_error(result, f"cannot write to {where}: Read-only file system; {fix}")


def test_overlap_needs_two_masks(finished_run: Path):
    assert_one_line_error(run_cli("analyze", "overlap", str(finished_run)), "pass two or more run directories (got 1)")


@pytest.mark.parametrize(("option", "value"), [("--steps", "0"), ("--sigma", "-0.1")])
def test_sensitivity_refuses_meaningless_numbers(finished_run: Path, option: str, value: str):
    """No head steps would silently fall back to the run's budget; sigma is a spread, never negative."""
    result = run_cli("analyze", "sensitivity", str(finished_run), option, value)
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
    assert "Traceback" not in result.output and not (finished_run / "sensitivity.csv").exists()


def test_discard_unstarted_keeps_anything_a_run_made(tmp_path: Path):
    run = tmp_path / "outputs" / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (run / "run.log").write_text("started\n")
    (run / "checkpoint").mkdir()
    assert not rundir.discard_unstarted(run, tmp_path) and (run / "run.log").exists(), "a resumable run stays"
    (run / "checkpoint").rmdir()
    assert not rundir.discard_unstarted(run, run) and run.exists(), "a folder that was there before stays"
    assert rundir.discard_unstarted(run, tmp_path)
    assert not (tmp_path / "outputs").exists() and tmp_path.is_dir(), "removed up to the folder that existed, not past it"


def _transfer(run: str, sparsity: str, tiny_model_dir: Path):
    return run_cli("adapt", "--task", "mrpc", "--method", "transfer", "--sparsity", sparsity, f"method.mask_run={run}",
                   *tiny_overrides(tiny_model_dir))


def test_transfer_without_a_mask_run(in_tmp: Path, tiny_model_dir: Path):
    result = run_cli("adapt", "--task", "mrpc", "--method", "transfer", *tiny_overrides(tiny_model_dir))
    assert_one_line_error(result, "method=transfer needs method.mask_run=")
    assert not (in_tmp / "outputs").exists()


def test_transfer_from_a_run_without_a_mask(finished_run: Path, in_tmp: Path, tiny_model_dir: Path):
    dense = run_cli("adapt", "--method", "feature_extraction", "--sparsity", "0", "hydra.run.dir=dense", *tiny_overrides(tiny_model_dir))
    assert dense.exit_code == 0, dense.output
    assert_one_line_error(_transfer("dense", "0.5", tiny_model_dir), "is a run of feature_extraction, a dense reference with no mask",
                          "method=transfer needs a pruning run")
    assert_one_line_error(_transfer("nowhere", "0.5", tiny_model_dir), "nowhere is not a directory")
    assert [p.name for p in (in_tmp / "outputs").rglob(".hydra")] == [".hydra"], "a refused transfer writes no run dir"


def test_transfer_at_another_sparsity_than_the_masks(finished_run: Path, in_tmp: Path, tiny_model_dir: Path):
    assert_one_line_error(_transfer(str(finished_run), "0.9", tiny_model_dir), "holds a mask at sparsity 0.5000, not 0.9",
                          "--sparsity 0.5")


def test_transfer_of_a_mask_for_another_base_model(finished_run: Path, in_tmp: Path, tiny_model_dir: Path):
    from prune_cli import mask_format

    loaded = mask_format.read_mask(finished_run / "mask.safetensors")
    mask_format.save_mask(finished_run / "mask.safetensors", loaded.masks, {**loaded.manifest, "base_weights_hash": "f" * 64})
    forget_digests(finished_run)  # as a run from before digests: the manifest's own check is what this reaches
    assert_one_line_error(_transfer(str(finished_run), "0.5", tiny_model_dir), "was learned on base weights ffffffffffff")
    assert len(list((in_tmp / "outputs").rglob("metrics.json"))) == 1, "only the source run finished"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--method", "adapt_by_pruning,finetune", "method.hold_fraction=0.4"],
         ["sweep job 1 (method=finetune):", "config key 'method.hold_fraction' does not exist", "no job has started"]),
        (["--sparsity", "0.5,0.9", "method.prune_fraction=0.5,0.8", "method.hold_fraction=0.3"],
         ["sweep job 1 (sparsity=0.5 method.prune_fraction=0.8):", "1 - prune_fraction = 0.2", "(1 other job of 4 fails too)"]),
        (["method=glob(nope*)"], ["'method=glob(nope*)' sweeps over no values", "method's options: adapt_by_pruning"]),
        # a sampling sweeper's range, which the basic sweeper cannot list: Hydra's traceback
        (["sparsity=interval(0.5,0.9)"], ["'sparsity=interval(0.5,0.9)' is an interval",
                                          "give the values (key=a,b), range(start,stop,step) or choice(a,b)"]),
        # a range of step 0: Python's traceback (whole numbers) or Hydra's (decimals), sorted or shuffled too
        (["seed=range(0,3,0)"], ["'seed=range(0,3,0)' has a step of 0, which never reaches its stop; give a step above 0"]),
        (["sparsity=range(0.1,0.5,0.0)"], ["'sparsity=range(0.1,0.5,0.0)' has a step of 0"]),
        (["seed=shuffle(range(0,3,0))"], ["'seed=shuffle(range(0,3,0))' has a step of 0"]),
        # ranges without end, which the checks listed until the process was killed
        (["seed=range(0,1e400)"], ["'seed=range(0,1e400)': a range's start, stop and step are finite numbers"]),
        (["seed=range(0,3,1e-300)"], ["'seed=range(0,3,1e-300)' lists about 3e+300 values, more than a sweep may have (10,000 jobs"]),
        (["seed=range(0,10001)"], ["'seed=range(0,10001)' lists 10,001 values, more than a sweep may have (10,000 jobs: prune-cli lists and "
                                   "checks every job before the first starts); give a shorter range or a larger step"]),
        # a crossed grid of 20,000 jobs, listed in memory and checked one by one (about 0.1 s each) before the first started
        (["seed=range(0,200)", "method.t_small=range(1,101)"],
         ["the sweep crosses 200 seed × 100 method.t_small: 20,000 jobs, more than a sweep may have (10,000", "split it into smaller sweeps"]),
    ],
)
def test_a_sweep_with_a_bad_later_job_is_refused_before_any_job_starts(in_tmp: Path, tiny_model_dir: Path, args: list[str],
                                                                       fragments: list[str]):
    """Every job is composed and checked up front: checking the first alone let a later one fail
    hours into the sweep, or in Hydra's multi-line refusal after the sweep folder was made."""
    assert_one_line_error(run_cli("adapt", "-m", *args, *tiny_overrides(tiny_model_dir)), *fragments)
    assert not (in_tmp / "outputs").exists(), "nothing may be written for a refused sweep"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--sparsity", "0.9", "sparsity=0.7"], ["sparsity is given twice ('sparsity=0.9', then 'sparsity=0.7')", "give it once"]),
        (["--task", "sst2", "task=mrpc"], ["task is given twice ('task=sst2', then 'task=mrpc')"]),
        (["method.gamma=1e-7", "+method.gamma=2e-7"], ["method.gamma is given twice ('method.gamma=1e-7', then '+method.gamma=2e-7')"]),
        (["trainer.log_every=3", "~trainer.log_every"], ["trainer.log_every is given twice"]),
    ],
)
def test_a_key_given_twice_is_refused(in_tmp: Path, tiny_model_dir: Path, args: list[str], fragments: list[str]):
    """Hydra keeps the last of a key given twice and says nothing, so a typed option lost to a later
    override unseen (`--task sst2 task=mrpc` trained MRPC). Without the check each of these runs."""
    assert_one_line_error(run_cli("adapt", *args, *tiny_overrides(tiny_model_dir)), *fragments)
    assert not (in_tmp / "outputs").exists()


def test_a_sweep_whose_key_is_given_again_is_refused_not_collapsed(in_tmp: Path, tiny_model_dir: Path):
    """Hydra's basic sweeper keeps only the last of a repeated key: `sparsity=0.5,0.7 sparsity=0.9`
    ran one job at 0.9 and dropped the 0.5/0.7 dimension without a word."""
    result = run_cli("adapt", "-m", "--method", "random", "sparsity=0.5,0.7", "sparsity=0.9", *tiny_overrides(tiny_model_dir))
    assert_one_line_error(result, "sparsity is given twice ('sparsity=0.5,0.7', then 'sparsity=0.9')",
                          "a sweep lists all its values in one override")
    assert not (in_tmp / "outputs").exists()


def test_a_transfer_sweep_checks_each_jobs_mask_before_any_job_starts(finished_run: Path, in_tmp: Path, tiny_model_dir: Path):
    """The first job (s = 0.5, the mask's own) is fine; the second would have run after it and failed."""
    result = run_cli("adapt", "-m", "--task", "mrpc", "--method", "transfer", "--sparsity", "0.5,0.9", f"method.mask_run={finished_run}",
                     *tiny_overrides(tiny_model_dir))
    assert_one_line_error(result, "sweep job 1 (sparsity=0.9):", "holds a mask at sparsity 0.5000, not 0.9", "no job has started")
    assert not (in_tmp / "outputs" / "multirun").exists()


def test_an_experiments_grid_is_checked_job_by_job_without_dash_m(in_tmp: Path, tiny_model_dir: Path):
    """`+experiment=...` sets hydra.mode: MULTIRUN itself; its grid's jobs are checked like any sweep's."""
    result = run_cli("adapt", "+experiment=paper_fig2_cpu", "method.prune_fraction=0.6", *tiny_overrides(tiny_model_dir))
    assert_one_line_error(result, "sweep job 2 (method=random sparsity=0.5):", "'method.prune_fraction' does not exist",
                          "(7 other jobs of 10 fail too)")
    assert not (in_tmp / "outputs").exists()
