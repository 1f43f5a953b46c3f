"""`prune-cli adapt` → a complete run dir → `prune-cli evaluate` reproduces it, on the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURE_GLUE, only_run_dir, read_metrics, run_cli, tiny_overrides

from prune_cli import mask_format

RUN_FILES = {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "head.safetensors",
             "history.jsonl", "mask.safetensors", "metrics.json", "run.log"}


def files_in(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("task", "sparsity"), [("sst2", "0.5"), ("stsb", "0.7"), ("mnli", "0.2"), ("cola", "0.9")])
def test_adapt_writes_a_complete_run_dir_and_evaluate_reproduces_it(in_tmp: Path, tiny_model_dir: Path, task: str, sparsity: str):
    result = run_cli("adapt", "--task", task, "--sparsity", sparsity, "--seed", "3", *tiny_overrides(tiny_model_dir))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    assert run_dir.relative_to(in_tmp).parts[:4] == ("outputs", task, "adapt_by_pruning", f"s{sparsity}")
    assert files_in(run_dir) == RUN_FILES
    # the path on one line, however long, so that `prune-cli adapt ... | tail -1` gives it whole
    assert result.output.splitlines()[-1] == f"run directory: {run_dir.resolve()}"

    metrics = read_metrics(run_dir)
    assert (metrics["task"], metrics["method"], metrics["seed"]) == (task, "adapt_by_pruning", 3)
    assert metrics["sparsity_requested"] == float(sparsity)
    assert abs(metrics["sparsity_realized"] - float(sparsity)) <= 0.001
    assert metrics["base_weights_unchanged"] and metrics["base_weights_hash_before"] == metrics["base_weights_hash_after"]
    assert metrics["main_metric"] in metrics["metrics"]
    if task == "mnli":
        assert {"eval_accuracy", "eval_accuracy_mm"} <= set(metrics["metrics"])
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == list(range(1, 7))

    manifest = mask_format.read_manifest(run_dir / "mask.safetensors")
    assert manifest["base_weights_hash"] == metrics["base_weights_hash_before"]
    assert manifest["num_maskable"] == metrics["num_maskable"]
    assert sum(t["kept"] for t in manifest["tensors"]) == metrics["num_kept"]

    again = run_cli("evaluate", str(run_dir))
    assert again.exit_code == 0, again.output
    from prune_cli.api import evaluate

    assert evaluate(run_dir).metrics == metrics["metrics"]  # exact, not approximate


@pytest.mark.parametrize("task", ["sst2", "mrpc"])
def test_a_roberta_adapts_at_the_default_length_and_evaluate_reproduces_it(in_tmp: Path, tiny_roberta_dir: Path, task: str):
    """A BERT-family encoder other than BERT (RoBERTa: positions from padding_idx + 1, one token
    type, a byte-level BPE whose tokenizer, saved by hand, names no length limit), at the default
    data.max_seq_length (128) and with rows longer than the model takes: before its positions were
    read as RoBERTa numbers them, the long row failed the first batch with an IndexError."""
    glue = in_tmp / "glue"
    shutil.copytree(FIXTURE_GLUE, glue)
    long_text = " ".join(["the film is a fine and lovely one ."] * 20)  # ~180 tokens, past the 64 the model takes
    folder, long_row = {"sst2": ("SST-2", f"{long_text}\t1"), "mrpc": ("MRPC", f"1\t900\t901\t{long_text}\t{long_text}")}[task]
    for split in ("train.tsv", "dev.tsv"):
        path = glue / folder / split
        header, *rows = path.read_text().splitlines()
        path.write_text("\n".join([header, long_row, *rows]) + "\n")
    result = run_cli("adapt", "--task", task, *tiny_overrides(tiny_roberta_dir, f"data.dir={glue}", "data.max_seq_length=128"))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["base_weights_unchanged"] and abs(metrics["sparsity_realized"] - 0.5) <= 0.001
    again = run_cli("evaluate", "--check", str(run_dir))
    assert again.exit_code == 0, again.output


def test_a_label_typed_as_a_number_is_recorded_as_text_and_the_run_is_read(in_tmp: Path, tiny_model_dir: Path):
    """Hydra reads `tag=2` as the number 2; the record kept it so, and every reader of the run then
    refused its metrics.json as edited ("has 'tag': 2, not text"), report listing it as incomplete."""
    from prune_cli import report

    result = run_cli("adapt", "tag=2", "method.name=7", *tiny_overrides(tiny_model_dir, steps=2))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    metrics = read_metrics(run_dir)
    assert (metrics["tag"], metrics["method"]) == ("2", "7")
    assert mask_format.read_manifest(run_dir / "mask.safetensors")["method"] == "7"
    assert run_cli("evaluate", "--check", str(run_dir)).exit_code == 0
    groups, found, _ = report.build(in_tmp / "outputs")
    assert [(g.method, g.tag) for g in groups] == [("7", "2")] and not found.incomplete


def test_same_seed_gives_identical_mask_and_metrics(in_tmp: Path, tiny_model_dir: Path):
    for _ in range(2):
        assert run_cli("adapt", "--task", "mrpc", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir)).exit_code == 0
    runs = sorted(p.parent for p in (in_tmp / "outputs").rglob(".hydra"))
    assert len(runs) == 2, "the second run must get its own directory"
    first, second = (read_metrics(r) for r in runs)
    assert first["metrics"] == second["metrics"]
    assert (runs[0] / "mask.safetensors").read_bytes() == (runs[1] / "mask.safetensors").read_bytes()


def test_python_adapt_makes_the_run_the_cli_makes(in_tmp: Path, tiny_model_dir: Path):
    """`prune_cli.api.adapt` is `prune-cli adapt` from Python: the same checks (a typo raises the
    CLI's message, and leaves no run directory), the same run, and it returns the run directory."""
    from prune_cli.api import TaskBank, adapt
    from prune_cli.errors import UserError

    with pytest.raises(UserError, match="did you mean 'trainer.max_steps'"):
        adapt(task="sst2", overrides=["trainer.max_step=3"])
    with pytest.raises(UserError, match="make a sweep .* this call runs one run"):
        adapt(overrides=["+experiment=paper_fig2_cpu_refs", *tiny_overrides(tiny_model_dir)])
    # it said "add -m/--multirun", a flag Python has no place for
    with pytest.raises(UserError, match=r"^'seed=1,2' lists several values; this call runs one run: give one value, and loop in Python"):
        adapt(task="sst2", seed="1,2")
    # one string would be iterated character by character, each an override
    with pytest.raises(UserError, match=r"^overrides takes a list of strings, not one string \('trainer.max_steps=3'\); e.g. overrides="):
        adapt(task="sst2", overrides="trainer.max_steps=3")
    with pytest.raises(UserError, match=r"^overrides are 'key=value' strings \(e.g. 'trainer.max_steps=500'\); got 3$"):
        adapt(task="sst2", overrides=["trainer.max_steps=", 3])
    with pytest.raises(UserError, match="unknown task 'nope'"):  # overrides=None is no overrides, not a TypeError
        adapt(task="nope", overrides=None)
    with pytest.raises(UserError, match=r"^task is a name \(a string\); got 2$"):
        adapt(task=2)
    assert not (in_tmp / "outputs").exists()
    run_dir = adapt(task="mrpc", sparsity=0.5, seed=3, overrides=tiny_overrides(tiny_model_dir))
    assert run_dir.is_absolute() and run_dir.parent.parent == in_tmp / "outputs" / "mrpc" / "adapt_by_pruning"
    assert run_cli("adapt", "--task", "mrpc", "--sparsity", "0.5", "--seed", "3", *tiny_overrides(tiny_model_dir)).exit_code == 0
    [cli_run] = [p.parent for p in (in_tmp / "outputs").rglob(".hydra") if p.parent != run_dir]
    assert read_metrics(run_dir)["metrics"] == read_metrics(cli_run)["metrics"]
    assert (run_dir / "mask.safetensors").read_bytes() == (cli_run / "mask.safetensors").read_bytes()
    bank = TaskBank(device="cpu")
    assert bank.add(run_dir) == "mrpc" and len(bank.predict("mrpc", [("a cat sits .", "a cat is sitting .")])) == 1
    # a model folder as a Path, as a notebook holds one (it was an AttributeError), for a run and for a bank
    without_model = [o for o in tiny_overrides(tiny_model_dir) if not o.startswith("model.name_or_path=")]
    by_path = adapt(task="mrpc", sparsity=0.5, seed=3, model=tiny_model_dir, overrides=without_model)
    assert (by_path / "mask.safetensors").read_bytes() == (run_dir / "mask.safetensors").read_bytes()
    assert TaskBank(device="cpu", model=tiny_model_dir).add(by_path) == "mrpc"


def test_python_evaluate_scores_a_run_again_as_the_cli_does_without_printing(in_tmp: Path, tiny_model_dir: Path,
                                                                          capsys: pytest.CaptureFixture):
    """`prune_cli.api.evaluate` is `prune-cli evaluate` of one run from Python: its figures now and
    stored, whether they are the same and on which rows, returned instead of printed; bad input
    raises evaluate's own messages."""
    from prune_cli.api import evaluate
    from prune_cli.errors import UserError

    assert run_cli("adapt", "--task", "stsb", *tiny_overrides(tiny_model_dir), "hydra.run.dir=run").exit_code == 0
    capsys.readouterr()
    rescored = evaluate(in_tmp / "run")
    assert capsys.readouterr().out == ""
    assert rescored.same and rescored.metrics == read_metrics(in_tmp / "run")["metrics"] and rescored.other_rows == []
    assert set(rescored.metrics) == {"eval_pearson", "eval_spearmanr"}

    glue = Path(shutil.copytree(FIXTURE_GLUE, in_tmp / "glue"))
    dev = glue / "STS-B" / "dev.tsv"
    lines = dev.read_text().splitlines()
    *fields, score = lines[1].split("\t")
    lines[1] = "\t".join([*fields, str(5.0 - float(score))])  # one gold score changed
    dev.write_text("\n".join(lines) + "\n")
    moved = evaluate(str(in_tmp / "run"), data_dir=glue)  # a Path, as a notebook holds one
    assert not moved.same and moved.stored == rescored.metrics
    assert moved.other_rows == [f"the dev rows scored now (12 rows of {dev}) are not the rows the run was scored on "
                                f"(12 rows of {FIXTURE_GLUE / 'STS-B' / 'dev.tsv'})"]
    with pytest.raises(UserError, match=r"^run_dir is a run directory \(a string or a Path\); got 3$"):
        evaluate(3)
    with pytest.raises(UserError, match="nowhere"):
        evaluate(in_tmp / "nowhere")


def test_a_rescore_on_other_rows_than_the_run_was_scored_on_says_so(in_tmp: Path, tiny_model_dir: Path):
    """A GLUE folder edited or replaced since a run (or another copy of the task) gives other
    figures, and evaluate showed only "no": the data's doing looked like the run's. export --check
    compared an export with the run's figures on other rows, and failed (or passed) for the data."""
    glue = Path(shutil.copytree(FIXTURE_GLUE, in_tmp / "glue"))
    runs = []
    for seed in (1, 2):
        assert run_cli("adapt", *tiny_overrides(tiny_model_dir, f"data.dir={glue}", f"seed={seed}"), f"hydra.run.dir=run{seed}").exit_code == 0
        runs.append(in_tmp / f"run{seed}")
    dev = glue / "SST-2" / "dev.tsv"
    result = run_cli("evaluate", *map(str, runs), "--data-dir", str(FIXTURE_GLUE))  # the same rows in another folder
    assert result.exit_code == 0 and "other data" not in result.output, result.output
    lines = dev.read_text().splitlines()
    lines[1:] = [*lines[2:], lines[1]]  # the same rows in another order: the same score
    dev.write_text("\n".join(lines) + "\n")
    result = run_cli("evaluate", *map(str, runs))
    assert result.exit_code == 0 and "other data" not in result.output and "2 of 2 runs re-scored" in result.output, result.output
    text, label = lines[1].rsplit("\t", 1)
    lines[1] = f"{text}\t{1 - int(label)}"  # one label corrected
    dev.write_text("\n".join(lines) + "\n")
    result = run_cli("evaluate", *map(str, runs))
    assert result.exit_code == 0, result.output
    assert result.output.count(f"other data: the dev rows of {dev} have changed since the run was scored on them (12 rows then, 12 now)") == 2
    assert "0 of 2 runs re-scored" in result.output and f"differs: {runs[0]} (scored on other rows)" in result.output
    from conftest import assert_one_line_error

    assert_one_line_error(run_cli("evaluate", *map(str, runs), "--check"),
                          "--check: 2 of 2 runs score differently from their metrics.json (2 of them on other rows than they were scored on)",
                          exit_code=1)

    assert_one_line_error(run_cli("export", str(runs[0]), "--out", str(in_tmp / "hf"), "--check"),
                          f"--check compares with the run's figures, but the dev rows of {dev} have changed",
                          "point --data-dir at the data the run was scored on")
    assert not (in_tmp / "hf").exists()
    assert_one_line_error(run_cli("predict", str(runs[0]), "--split", "dev", "--out", str(in_tmp / "preds")),
                          f"--split dev writes the rows behind {runs[0]}'s score, but the dev rows of {dev} have changed")
    assert not (in_tmp / "preds").exists()
    result = run_cli("export", str(runs[0]), "--out", str(in_tmp / "hf"), "--check", "--data-dir", str(FIXTURE_GLUE))
    assert result.exit_code == 0, result.output
    metrics = read_metrics(runs[1])
    del metrics["scored_on"]["dev"]["rows_sha256"]  # a run recorded before rows were fingerprinted: nothing to compare
    (runs[1] / "metrics.json").write_text(json.dumps(metrics))
    result = run_cli("evaluate", str(runs[1]))
    assert result.exit_code == 0 and "other data" not in result.output, result.output


def test_evaluate_rescores_several_runs_and_names_those_that_differ(in_tmp: Path, tiny_model_dir: Path):
    """A sweep re-scored in one command: a summary line, and the runs whose figures moved named;
    a bad path among them fails before any run is scored."""
    for task in ("sst2", "stsb"):
        assert run_cli("adapt", "--task", task, *tiny_overrides(tiny_model_dir)).exit_code == 0
    runs = sorted(p.parent for p in (in_tmp / "outputs").rglob(".hydra"))
    result = run_cli("evaluate", *map(str, runs), "--check")
    assert result.exit_code == 0, result.output
    assert result.output.count("re-scored") == 3 and "2 of 2 runs re-scored to their stored figures exactly" in result.output

    metrics = read_metrics(runs[1])
    metrics["metrics"] = {key: value + 0.5 for key, value in metrics["metrics"].items()}  # as if scored elsewhere
    (runs[1] / "metrics.json").write_text(json.dumps(metrics))
    result = run_cli("evaluate", *map(str, runs))
    assert result.exit_code == 0, result.output  # without --check a moved score is reported, not failed
    assert "1 of 2 runs re-scored to their stored figures exactly" in result.output and f"differs: {runs[1]}" in result.output

    from conftest import assert_one_line_error

    # --check ends as diff does: 1 for a difference, 2 for input it could not check
    assert_one_line_error(run_cli("evaluate", *map(str, runs), "--check"),
                          "--check: 1 of 2 runs score differently from their metrics.json (see above)", exit_code=1)
    assert_one_line_error(run_cli("evaluate", str(runs[1]), "--check"),
                          "--check: the run scores differently from its metrics.json (see above)", exit_code=1)
    assert run_cli("evaluate", str(runs[0]), "--check").exit_code == 0
    assert_one_line_error(run_cli("evaluate", str(runs[0]), str(in_tmp / "nowhere"), "--check"), "nowhere")

    result = run_cli("evaluate", str(runs[0]), str(in_tmp / "nowhere"))
    assert_one_line_error(result, "nowhere")
    assert "re-scored" not in result.output


def test_each_method_writes_the_files_it_is_scored_with_and_evaluate_takes_them(in_tmp: Path, tiny_model_dir: Path):
    """`rundir.scored_with` says which files a finished run of each algorithm must hold (readers refuse
    a run without them): every method's run holds exactly those, and re-scores to its own figures."""
    from prune_cli import rundir
    from prune_cli.methods import METHODS

    algorithms = sorted(set(METHODS) - {"transfer"})  # transfer needs a mask run of its own: tests/test_bad_inputs.py
    result = run_cli("adapt", "-m", "--method", ",".join(algorithms), "hydra.sweep.dir=grid", "hydra.sweep.subdir=${method.name}",
                     *tiny_overrides(tiny_model_dir, steps=4))
    assert result.exit_code == 0, result.output
    for algorithm in algorithms:
        weights = {rundir.MASK, rundir.ENCODER} & files_in(in_tmp / "grid" / algorithm)
        assert weights == set(rundir.scored_with(algorithm)), algorithm
    result = run_cli("evaluate", *(str(in_tmp / "grid" / algorithm) for algorithm in algorithms))
    assert f"{len(algorithms)} of {len(algorithms)} runs re-scored to their stored figures exactly" in result.output, result.output


def test_a_run_given_relative_paths_is_rescored_from_any_folder(in_tmp: Path, tiny_model_dir: Path, tmp_path_factory):
    """`data.dir=glue --model ./model` are relative to where the run was launched: the commands
    that read the finished run find both from any folder, and `--data-dir` is still read from
    the folder it is typed in."""
    import shutil

    shutil.copytree(FIXTURE_GLUE, in_tmp / "glue")
    shutil.copytree(tiny_model_dir, in_tmp / "model")
    overrides = [o for o in tiny_overrides(tiny_model_dir) if not o.startswith(("data.dir=", "model.name_or_path="))]
    assert run_cli("adapt", "--task", "sst2", "--model", "./model", "data.dir=glue", *overrides).exit_code == 0
    run_dir = only_run_dir(in_tmp / "outputs")
    stored = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "name_or_path: ./model" in stored and "dir: glue" in stored, "the stored config keeps what was typed"
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    os.chdir(elsewhere)
    result = run_cli("evaluate", str(run_dir))
    assert result.exit_code == 0, result.output
    assert "│ yes" in result.output and "│ no" not in result.output, "re-scored to its stored figure"
    shutil.copytree(FIXTURE_GLUE, elsewhere / "other-glue")
    assert run_cli("evaluate", str(run_dir), "--data-dir", "other-glue").exit_code == 0
    assert run_cli("evaluate", str(run_dir), "--data-dir", "missing-glue").exit_code == 2


def test_folders_with_spaces_quotes_and_letters_beyond_ascii_work_as_options_and_sweep_folders(in_tmp: Path, tiny_model_dir: Path):
    """`--model` became a raw override (`model.name_or_path=/my models/bert`), which Hydra's grammar cannot
    read with a quote or a non-ASCII letter in it: "invalid override". Continuing a sweep launched under
    such a folder failed the same way, in Hydra's own traceback, on the sweep folder's path."""
    import shutil

    from conftest import assert_one_line_error

    model = shutil.copytree(tiny_model_dir, in_tmp / "José's models" / "tiny bert")
    launched = in_tmp / "expériences 1"
    launched.mkdir()
    os.chdir(launched)
    overrides = [o for o in tiny_overrides(tiny_model_dir) if not o.startswith("model.name_or_path=")]
    result = run_cli("adapt", "--model", str(model), *overrides)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(launched / "outputs")
    assert read_metrics(run_dir)["model"] == str(model)
    assert "│ yes" in run_cli("evaluate", str(run_dir)).output

    assert run_cli("adapt", "-m", "--model", str(model), "--sparsity", "0.3,0.5", *overrides).exit_code == 0
    (sweep,) = (launched / "outputs" / "multirun").iterdir()
    done = sorted(path.parent for path in sweep.rglob("metrics.json"))
    assert len(done) == 2
    shutil.rmtree(done[1])  # a job to run again when the sweep is continued
    result = run_cli("adapt", "--resume", str(sweep))
    assert result.exit_code == 0, result.output
    assert sorted(path.parent for path in sweep.rglob("metrics.json")) == done
    assert_one_line_error(run_cli("adapt", "--task", "sst 2", *overrides), "unknown task 'sst 2'; choose from")
    assert_one_line_error(run_cli("adapt", "data.dir=/tmp/ü"), "invalid override", "goes in single quotes: key='value'")


def test_a_run_given_hydra_interpolations_is_read_back_with_the_values_it_had(in_tmp: Path, tiny_model_dir: Path, tmp_path_factory):
    """Hydra stores `data.dir=${hydra:runtime.cwd}/glue` as typed, and `${hydra:...}` resolves only inside
    the run's own Hydra app: evaluate (from any folder) and report stopped on it with OmegaConf's traceback.
    The run's .hydra/hydra.yaml records what each resolved to."""
    import shutil

    from prune_cli import rundir

    shutil.copytree(FIXTURE_GLUE, in_tmp / "glue")
    overrides = [o for o in tiny_overrides(tiny_model_dir) if not o.startswith("data.dir=")]
    assert run_cli("adapt", "--task", "sst2", "data.dir=${hydra:runtime.cwd}/glue", "tag=${hydra:job.name}", *overrides).exit_code == 0
    run_dir = only_run_dir(in_tmp / "outputs")
    assert "dir: ${hydra:runtime.cwd}/glue" in (run_dir / ".hydra" / "config.yaml").read_text(), "stored as typed"
    assert read_metrics(run_dir)["tag"] == "adapt"
    cfg = rundir.load_config(run_dir)
    assert (cfg.data.dir, cfg.tag) == (str(in_tmp / "glue"), "adapt")
    os.chdir(tmp_path_factory.mktemp("elsewhere"))
    result = run_cli("evaluate", str(run_dir))
    assert result.exit_code == 0 and "│ no" not in result.output, result.output
    result = run_cli("report", str(in_tmp / "outputs"), "--out", "report")
    assert result.exit_code == 0 and "1 complete runs, 0 failed, 0 incomplete." in Path("report/report.md").read_text(), result.output


def test_evaluate_refuses_a_mask_for_other_base_weights(in_tmp: Path, tiny_model_dir: Path, tmp_path_factory):
    assert run_cli("adapt", "--task", "sst2", *tiny_overrides(tiny_model_dir)).exit_code == 0
    run_dir = only_run_dir(in_tmp / "outputs")
    import torch
    from transformers import BertModel

    other = tmp_path_factory.mktemp("other-bert")
    model = BertModel.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.encoder.layer[0].attention.self.query.weight.add_(0.01)
    model.save_pretrained(other)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_model_dir / name).exists():
            (other / name).write_bytes((tiny_model_dir / name).read_bytes())
    config = run_dir / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace(str(tiny_model_dir), str(other)))
    result = run_cli("evaluate", str(run_dir))
    assert result.exit_code == 2
    assert "was learned on base weights" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.num_threads=1"]],
                         ids=["basic", "joblib"])
def test_multirun_sweep_gives_one_complete_run_dir_per_job(in_tmp: Path, tiny_model_dir: Path, launcher: list[str]):
    """A real `-m` in a subprocess, sequential or as parallel joblib jobs."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", "-m", "--task", "sst2", "--sparsity", "0.3,0.6",
               *tiny_overrides(tiny_model_dir, *launcher, steps=4)]
    done = subprocess.run(command, cwd=in_tmp, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    sweeps = list((in_tmp / "outputs" / "multirun").iterdir())
    assert len(sweeps) == 1 and (sweeps[0] / "multirun.yaml").is_file()
    runs = sorted(p.parent for p in sweeps[0].rglob(".hydra"))
    assert len(runs) == 2
    realized = sorted(read_metrics(r)["sparsity_realized"] for r in runs)
    assert [round(s, 3) for s in realized] == [0.3, 0.6]
    for run in runs:
        assert files_in(run) == RUN_FILES
        metrics = read_metrics(run)
        if launcher:  # each parallel job records the threads it was given
            assert metrics["threads"] == 1
        # the processor: what a rerun elsewhere is compared against
        assert metrics["hardware"]["cpu_capability"] and (metrics["hardware"]["gpu"] is None) == (metrics["device"] == "cpu")
        assert set(metrics["versions"]) == {"prune_cli", "python", "torch", "transformers"}


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.num_threads=1"]],
                         ids=["basic", "joblib"])
def test_a_sweep_runs_a_dense_reference_once_whatever_the_sparsities(in_tmp: Path, tiny_model_dir: Path, launcher: list[str]):
    """Fine-tuning ignores sparsity: a sweep over three sparsities and two seeds fine-tunes once per
    seed, not three times, while the pruning method runs every cell; parallel jobs agree on which."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", "-m", "--method", "finetune,random", "--sparsity", "0.3,0.6,0.9",
               "--seed", "1,2", *tiny_overrides(tiny_model_dir, *launcher, steps=3)]
    done = subprocess.run(command, cwd=in_tmp, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = sorted(p.parent for p in (in_tmp / "outputs" / "multirun").rglob(".hydra"))
    identities = sorted((m["method"], m["seed"], m["sparsity_requested"]) for m in map(read_metrics, runs))
    tuned = [(seed, s) for method, seed, s in identities if method == "finetune"]
    assert [seed for seed, _ in tuned] == [1, 2], identities  # one fine-tuning per seed, at whichever s got there first
    assert sorted((seed, s) for method, seed, s in identities if method == "random") == [(seed, s) for seed in (1, 2) for s in (0.3, 0.6, 0.9)]
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped sweep job")]
    assert len(skipped) == 4 and all("finetune ignores sparsity" in line for line in skipped)


def test_a_dense_reference_sent_to_one_folder_for_every_sparsity_is_skipped_not_failed(in_tmp: Path, tiny_model_dir: Path):
    """A subdir without the sparsity is the natural one for a reference that ignores it: the
    repeat is the same run, told apart from the first by its job number, so it is skipped."""
    result = run_cli("adapt", "-m", "--method", "finetune", "--sparsity", "0.5,0.9", "hydra.sweep.dir=grid",
                     "hydra.sweep.subdir=${task.name}/${method.name}", *tiny_overrides(tiny_model_dir, steps=3))
    assert result.exit_code == 0, result.output
    assert "skipped sweep job 1: finetune ignores sparsity" in " ".join(result.output.split())
    assert read_metrics(in_tmp / "grid" / "sst2" / "finetune")["sparsity_requested"] == 0.5


def test_a_glob_sweep_over_a_group_runs(in_tmp: Path, tiny_model_dir: Path):
    """`method=glob(...)` is Hydra's sweep over a group's options; it once ended in a traceback."""
    result = run_cli("adapt", "-m", "method=glob([rand*,magn*])", *tiny_overrides(tiny_model_dir, steps=3))
    assert result.exit_code == 0, result.output
    runs = {p.parent for p in (in_tmp / "outputs" / "multirun").rglob("metrics.json")}
    assert sorted(read_metrics(run)["method"] for run in runs) == ["magnitude", "random"]


def test_an_experiment_runs_its_grid_without_dash_m(in_tmp: Path, tiny_model_dir: Path):
    """`+experiment=...` sets hydra.mode: MULTIRUN: launched as the sweep it is, into its sweep folder."""
    result = run_cli("adapt", "+experiment=paper_fig2_cpu_refs", "hydra.sweep.dir=refs", *tiny_overrides(tiny_model_dir, steps=3))
    assert result.exit_code == 0, result.output
    runs = {p.parent for p in (in_tmp / "refs").rglob("metrics.json")}
    assert sorted(read_metrics(run)["method"] for run in runs) == ["feature_extraction", "finetune"]
    assert (in_tmp / "refs" / "multirun.yaml").is_file() and not (in_tmp / "outputs").exists()


def test_a_failing_sweep_job_does_not_stop_the_others(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    import shutil

    glue = tmp_path / "glue-sst2-only"
    shutil.copytree(FIXTURE_GLUE / "SST-2", glue / "SST-2")
    result = run_cli("adapt", "-m", "--task", "sst2,rte", *tiny_overrides(tiny_model_dir, f"data.dir={glue}", steps=3))
    assert result.exit_code == 2
    assert "1 sweep job(s) failed" in result.output and "(reason in its failed.json)" in result.output
    runs = {p.parent for p in (in_tmp / "outputs" / "multirun").rglob(".hydra")}
    finished = [r for r in runs if (r / "metrics.json").exists()]
    failed = [r for r in runs if (r / "failed.json").exists()]
    assert len(finished) == 1 and read_metrics(finished[0])["task"] == "sst2"
    assert len(failed) == 1 and "RTE" in json.loads((failed[0] / "failed.json").read_text())["error"]
    report = run_cli("report", str(in_tmp / "outputs"))
    assert report.exit_code == 0 and "failed" in report.output


def test_a_parallel_sweep_with_a_failed_job_exits_non_zero_and_names_it(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    """joblib's jobs run in worker processes, which report nothing back: the launching process
    reads their failed.json files, so the command still fails and names the job."""
    import shutil

    glue = tmp_path / "glue-sst2-only"
    shutil.copytree(FIXTURE_GLUE / "SST-2", glue / "SST-2")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", "-m", "--task", "sst2,rte", "hydra.sweep.dir=grid",
               *tiny_overrides(tiny_model_dir, f"data.dir={glue}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                               "trainer.num_threads=1", steps=3)]
    done = subprocess.run(command, cwd=in_tmp, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    failed = [p.parent for p in (in_tmp / "grid").rglob("failed.json")]
    assert len(failed) == 1 and f"1 sweep job(s) failed: {failed[0]} (reason in its failed.json)" in done.stderr, done.stderr


def test_a_sweep_into_a_folder_that_holds_runs_is_refused_before_anything_is_written(in_tmp: Path, tiny_model_dir: Path):
    """Jobs are named by settings and job number: a second sweep into the same folder would reach
    the first one's job folders, where Hydra rewrites .hydra/ before any check of ours runs."""
    sweep = ["hydra.sweep.dir=grid", *tiny_overrides(tiny_model_dir, steps=3)]
    assert run_cli("adapt", "-m", "--method", "random,magnitude", *sweep).exit_code == 0
    configs = {path: path.read_bytes() for path in (in_tmp / "grid").rglob("*.yaml")}
    result = run_cli("adapt", "-m", "--method", "magnitude,random", sweep[0], *tiny_overrides(tiny_model_dir, "trainer.batch_size=4", steps=3))
    assert result.exit_code == 2
    assert "sweep folder grid already holds 2 runs" in " ".join(result.output.split()) and "Traceback" not in result.output
    assert "continue that sweep with `prune-cli adapt --resume grid`" in " ".join(result.output.split())
    assert {path: path.read_bytes() for path in (in_tmp / "grid").rglob("*.yaml")} == configs
    assert run_cli("adapt", "-m", "--method", "random", "hydra.sweep.dir=grid2", *sweep[1:]).exit_code == 0  # a new folder is fine


# A subdir that leaves out what tells two jobs apart, and that the check before the launch cannot
# resolve (it reads hydra.job.name, which Hydra gives only as a job starts): the case the jobs
# themselves must still handle, `${task.name}` alone being refused before the launch.
SHARED_SUBDIR = "hydra.sweep.subdir=${task.name}_${hydra.job.name}"


def test_jobs_that_share_a_folder_leave_the_first_ones_run_as_it_finished(in_tmp: Path, tiny_model_dir: Path):
    """A `hydra.sweep.subdir` that leaves out what tells two jobs apart sends both to one folder:
    the second must neither rewrite the first's config nor mark its finished run as failed."""
    result = run_cli("adapt", "-m", "--method", "magnitude,random", "hydra.sweep.dir=grid", SHARED_SUBDIR,
                     *tiny_overrides(tiny_model_dir, steps=3))
    assert result.exit_code == 2, result.output
    assert "1 sweep job(s) failed" in result.output and "holds another job's run" in " ".join(result.output.split())
    run = in_tmp / "grid" / "sst2_adapt"
    assert read_metrics(run)["method"] == "magnitude" and not (run / "failed.json").exists()
    assert "name: magnitude" in (run / ".hydra" / "config.yaml").read_text()
    assert "method=magnitude" in (run / ".hydra" / "overrides.yaml").read_text()
    log = (run / "run.log").read_text()  # Hydra opened it for the second job too, which wrote nothing there
    assert log.count("task=sst2") == 1 and "method=magnitude" in log and "random" not in log
    assert run_cli("evaluate", str(run)).exit_code == 0
    again = run_cli("adapt", "--resume", "grid")  # continued: the first job is done, the second is refused again
    assert again.exit_code == 2 and again.output.count("finished already") == 1 and "holds another job's run" in " ".join(again.output.split())
    assert read_metrics(run)["method"] == "magnitude" and "name: magnitude" in (run / ".hydra" / "config.yaml").read_text()


def test_jobs_that_share_a_folder_under_a_parallel_launcher_leave_one_run_and_name_the_other(in_tmp: Path, tiny_model_dir: Path):
    """Under joblib the two jobs start at once, before either has results: the first to claim the
    folder runs, the other writes nothing there (no config, no results, no failed.json), and the
    launching process, which hears nothing from the workers, still names it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", "-m", "--method", "magnitude,random", "hydra.sweep.dir=grid", SHARED_SUBDIR,
               *tiny_overrides(tiny_model_dir, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.num_threads=1", steps=3)]
    done = subprocess.run(command, cwd=in_tmp, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    run = in_tmp / "grid" / "sst2_adapt"
    errors = " ".join(done.stderr.split())
    assert f"1 sweep job(s) failed: {run}, job " in errors and "its folder holds another job's run" in errors, errors
    method = read_metrics(run)["method"]
    assert f"name: {method}" in (run / ".hydra" / "config.yaml").read_text() and not (run / "failed.json").exists()
    other = ({"magnitude", "random"} - {method}).pop()
    log = (run / "run.log").read_text()  # the other job's log lines, if any, must not land in this run's log
    assert log.count("task=sst2") == 1 and f"method={method}" in log and other not in log
    assert run_cli("evaluate", str(run)).exit_code == 0


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_everything_written_is_as_readable_as_the_umask_allows(in_tmp: Path, tiny_model_dir: Path, umask: int):
    """Files written atomically go through mkstemp/mkdtemp, which make them private (0600/0700)
    whatever the umask; a teammate could then not read a run's metrics or load its mask. Every
    file prune-cli writes, and the exported folder, get the mode a plain `open()` would give."""
    previous = os.umask(umask)
    try:
        assert run_cli("adapt", *tiny_overrides(tiny_model_dir), "hydra.run.dir=run").exit_code == 0
        assert run_cli("predict", "run", "--out", "preds").exit_code == 0
        assert run_cli("export", "run", "--out", "hf").exit_code == 0
    finally:
        os.umask(previous)
    written = [p for folder in ("run", "preds", "hf") for p in (in_tmp / folder).rglob("*")]
    assert written
    for path in written:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert path.stat().st_mode & 0o777 == expected, (path, oct(path.stat().st_mode & 0o777))
    assert (in_tmp / "hf").stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_sweep_over_two_backbones_reports_each_on_its_own(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    """`--model A,B` sweeps backbones; `report` then files each backbone's runs in its own table
    (`sst2@<backbone>`), never averaging A's seed with B's, and a `--model` word is no recipe change."""
    import shutil

    from safetensors.torch import load_file, save_file

    other = tmp_path / "other-bert"
    shutil.copytree(tiny_model_dir, other)
    # another model (a copy of the same weights would be the same backbone under a second name)
    weights = load_file(str(other / "model.safetensors"))
    save_file({name: tensor + 0.5 if name.endswith("LayerNorm.bias") else tensor for name, tensor in weights.items()},
              str(other / "model.safetensors"), metadata={"format": "pt"})
    overrides = [o for o in tiny_overrides(tiny_model_dir, steps=2) if not o.startswith("model.")]
    result = run_cli("adapt", "-m", "--task", "sst2", "--model", f"{tiny_model_dir},{other}", *overrides)
    assert result.exit_code == 0, result.output
    report = run_cli("report", str(in_tmp / "outputs"))
    assert report.exit_code == 0, report.output
    markdown = (in_tmp / "outputs" / "report.md").read_text()
    assert f"## sst2@{tiny_model_dir} (eval_accuracy, dev)" in markdown and f"## sst2@{other} (eval_accuracy, dev)" in markdown
    assert "Backbones: " in markdown and "repeat" not in markdown and "mixes recipes" not in report.output
    assert len(list((in_tmp / "outputs").glob("report_sst2@*.png"))) == 2
