"""A user's own task and recipe, in a folder named by $PRUNE_CLI_CONFIG_PATH, run like packaged ones."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURE_GLUE, only_run_dir, run_cli, tiny_overrides
from omegaconf import OmegaConf

from prune_cli import rundir
from prune_cli.config import CONFIG_DIR, USER_CONFIG_ENV, compose, group_options, key_sources
from prune_cli.errors import UserError

MY_TASK = """\
name: mytask
glue_dir: MyTask
tsv:
  header: true
  text_columns: [sentence]
  label_column: label
  dev_files: {dev: dev.tsv}
hub: null
labels: ["0", "1"]
metrics: [accuracy]
main_metric: accuracy
"""
MY_RECIPE = """\
defaults:
  - adapt_by_pruning
  - _self_
name: my_recipe
theta_lr: 3.0e-5
"""


@pytest.fixture()
def user_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "my-configs"
    (folder / "task").mkdir(parents=True)
    (folder / "method").mkdir()
    (folder / "task" / "mytask.yaml").write_text(MY_TASK)
    (folder / "method" / "my_recipe.yaml").write_text(MY_RECIPE)
    (folder / "task" / "sst2.yaml").write_text("name: not-sst2\nglue_dir: X\n")  # may not replace the packaged one
    monkeypatch.setenv(USER_CONFIG_ENV, str(folder))
    return folder


def test_user_options_join_the_packaged_ones(user_configs: Path):
    assert "mytask" in group_options("task") and "sst2" in group_options("task")
    cfg = compose(["task=mytask", "method=my_recipe"])
    assert (cfg.task.name, cfg.method.name, cfg.method.algorithm, cfg.method.theta_lr) == ("mytask", "my_recipe", "adapt_by_pruning", 3e-5)
    assert compose(["task=sst2"]).task.name == "sst2", "a user file must not replace a packaged option"
    with pytest.raises(UserError, match="unknown task 'nope'; choose from: cola, mnli, mrpc, mytask"):
        compose(["task=nope"])
    with pytest.raises(UserError, match="would never be read: method.round_steps is a setting of method=imp, not of method=my_recipe"):
        compose(["method=my_recipe", "+method.round_steps=3"])
    # the recipe's algorithm comes from the recipe it starts from, so its theta_lr is no setting imp reads
    with pytest.raises(UserError, match=r"would never be read: method.theta_lr is a setting of .*method=my_recipe, not of method=imp"):
        compose(["method=imp", "+method.theta_lr=1e-4"])


def test_a_setting_a_recipe_inherits_names_the_recipe(user_configs: Path):
    """my_recipe sets no prune_fraction of its own but runs with adapt_by_pruning's: a method
    without the key says it is a setting of my_recipe too (and of the packaged stop-at-s recipe,
    built the same way)."""
    assert "prune_fraction" not in MY_RECIPE
    with pytest.raises(UserError, match="method.prune_fraction' does not exist with these choices; it is a setting of "
                                        "method=adapt_by_pruning, method=adapt_by_pruning_paper, method=adapt_by_pruning_stop_at_s, "
                                        "method=my_recipe$"):
        compose(["method=gmp", "method.prune_fraction=0.5"])


def test_recipes_that_start_from_each_other_do_not_hang_the_key_check(user_configs: Path):
    """Hydra refuses a defaults loop when it composes; listing the keys must still end."""
    (user_configs / "method" / "loop_a.yaml").write_text("defaults:\n  - loop_b\n  - _self_\nname: loop_a\nkey_a: 1\n")
    (user_configs / "method" / "loop_b.yaml").write_text("defaults:\n  - loop_a\n  - _self_\nname: loop_b\nkey_b: 1\n")
    sources = key_sources()
    assert sources["method.key_a"] == sources["method.key_b"] == ("method=loop_a", "method=loop_b")


def test_a_user_task_and_recipe_run_end_to_end(user_configs: Path, in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    data_dir = in_tmp / "my-data"
    shutil.copytree(FIXTURE_GLUE / "SST-2", data_dir / "MyTask")
    overrides = tiny_overrides(tiny_model_dir, f"data.dir={data_dir}")
    result = run_cli("adapt", "--task", "mytask", "--method", "my_recipe", *overrides)
    assert result.exit_code == 0, result.output
    run = only_run_dir(in_tmp / "outputs")
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["task"], metrics["method"]) == ("mytask", "my_recipe")
    # the run dir describes itself: evaluate needs neither the user folder nor its variable
    monkeypatch.delenv(USER_CONFIG_ENV)
    shutil.rmtree(user_configs)
    result = run_cli("evaluate", str(run))
    assert result.exit_code == 0, result.output
    # its export's model card claims no GLUE dataset or hub scores, and its labels (no label_names) are its own
    from huggingface_hub import ModelCard

    assert run_cli("export", str(run), "--out", str(in_tmp / "hf")).exit_code == 0
    card = ModelCard.load(in_tmp / "hf" / "README.md")
    assert card.data.datasets is None and card.data.eval_results is None and "mytask" in card.data.tags
    assert "adapted to the task 'mytask' **by pruning only**" in card.text and "Labels: `0`, `1`." in card.text
    assert json.loads((in_tmp / "hf" / "config.json").read_text())["id2label"] == {"0": "0", "1": "1"}


MY_DATASET_TASK = """\
name: moviecsv
glue_dir: null
tsv: null
hub:
  dataset: {folder}
  text_columns: [review]
  label_column: sentiment
  dev_splits: {{dev: validation}}
labels: [neg, pos]
metrics: [accuracy]
main_metric: accuracy
test:
  hub_splits: {{Reviews: test}}
"""


def test_a_user_task_from_a_folder_of_csv_files_runs_end_to_end(user_configs: Path, in_tmp: Path, tiny_model_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch, tmp_path_factory):
    """A dataset that is no GLUE TSV folder (`hub.dataset`: here CSV files named by split, with
    their own columns and labels) trains, re-scores, writes its dev predictions under the task's
    name, and exports a card that files no hub dataset or scores for a folder on this machine."""
    import csv

    import datasets
    from huggingface_hub import ModelCard

    from prune_cli import model_card

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", in_tmp / "datasets-cache")
    folder = in_tmp / "movie-reviews"
    folder.mkdir()
    sst2 = list(csv.reader((FIXTURE_GLUE / "SST-2" / "train.tsv").open(), delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    for split, rows in {"train": sst2, "validation": sst2[:12]}.items():
        with (folder / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["review", "sentiment"])
            writer.writerows([sentence, "pos" if label == "1" else "neg"] for sentence, label in rows)
    (folder / "test.csv").write_text("review\nwhat a joy\nterrible plot\nfine\n")  # no labels, no ids
    (user_configs / "task" / "moviecsv.yaml").write_text(MY_DATASET_TASK.format(folder="./movie-reviews"))
    result = run_cli("adapt", "--task", "moviecsv", *tiny_overrides(tiny_model_dir))  # data.dir is set, and not read
    assert result.exit_code == 0, result.output
    run = only_run_dir(in_tmp / "outputs")
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["task"], metrics["train_examples"]) == ("moviecsv", len(sst2))
    monkeypatch.delenv(USER_CONFIG_ENV)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # the relative dataset is found from where the run was launched
    assert run_cli("evaluate", str(run)).exit_code == 0
    assert run_cli("predict", str(run), "--split", "dev", "--out", str(in_tmp / "preds")).exit_code == 0
    rows = (in_tmp / "preds" / "moviecsv-dev.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction\tlabel" and len(rows) == 13 and {r.split("\t")[1] for r in rows[1:]} <= {"neg", "pos"}
    assert run_cli("predict", str(run), "--out", str(in_tmp / "test-preds")).exit_code == 0
    rows = [row.split("\t") for row in (in_tmp / "test-preds" / "Reviews.tsv").read_text().splitlines()]
    assert [row[0] for row in rows] == ["index", "0", "1", "2"], "a test split without GLUE's idx is numbered in order"
    assert run_cli("export", str(run), "--out", str(in_tmp / "hf")).exit_code == 0
    card = ModelCard.load(in_tmp / "hf" / "README.md")
    assert card.data.datasets is None and card.data.eval_results is None and "moviecsv" in card.data.tags
    assert "the task 'moviecsv' (a local dataset, `movie-reviews`)" in card.text and str(folder) not in card.text
    # the same task on a hub dataset files that dataset and its dev scores (no GLUE config, no glue- tag)
    cfg = rundir.load_config(run)
    cfg.task.hub.dataset = "me/movie-reviews"
    card = model_card.build(OmegaConf.to_container(cfg, resolve=True), metrics, "my-model")
    assert card.data.datasets == ["me/movie-reviews"] and "moviecsv" in card.data.tags
    [score] = card.data.eval_results
    assert (score.dataset_type, score.dataset_config, score.dataset_split, score.metric_type) == ("me/movie-reviews", None, "validation", "accuracy")
    assert score.dataset_name == "me/movie-reviews", "metadata names the dataset, not in the card text's words"


def test_a_user_task_without_data_says_where_to_point(user_configs: Path, in_tmp: Path, tiny_model_dir: Path):
    overrides = [o for o in tiny_overrides(tiny_model_dir) if not o.startswith("data.dir=")]
    result = run_cli("adapt", "--task", "mytask", *overrides)
    assert result.exit_code == 2
    assert "task 'mytask' has no dataset (task.hub is null)" in result.output and "MyTask/" in result.output


def test_a_missing_user_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(USER_CONFIG_ENV, str(tmp_path / "nope"))
    with pytest.raises(UserError, match=f"{USER_CONFIG_ENV} names .*nope, which is not a folder"):
        compose([])


def test_a_user_task_whose_labels_are_no_list_of_classes_is_refused_before_any_run(user_configs: Path, in_tmp: Path, tiny_model_dir: Path):
    (user_configs / "task" / "mytask.yaml").write_text(MY_TASK.replace('labels: ["0", "1"]', 'labels: "01"'))
    result = run_cli("adapt", "--task", "mytask", *tiny_overrides(tiny_model_dir))
    assert result.exit_code == 2 and "labels='01' must be null (a regression) or a list of two or more different classes" in result.output
    assert not (in_tmp / "outputs").exists()


def test_a_user_task_whose_main_metric_is_not_computed_is_refused_before_training(user_configs: Path, in_tmp: Path, tiny_model_dir: Path):
    """It was a KeyError traceback once training had finished, when the dev set was scored."""
    (user_configs / "task" / "mytask.yaml").write_text(MY_TASK.replace("main_metric: accuracy", "main_metric: f1"))
    result = run_cli("adapt", "--task", "mytask", *tiny_overrides(tiny_model_dir))
    assert result.exit_code == 2 and "task 'mytask': main_metric='f1' is not one of its metrics ['accuracy']" in result.output
    assert not (in_tmp / "outputs").exists()


@pytest.mark.parametrize("text, message", [
    ("name: [\n", r"is not valid YAML \(expected the node content, but found '<stream end>' at line 2\)"),
    ("- name\n", r"holds a YAML list, not a config \(keys with values\)"),
    ("42\n", r"holds a YAML int, not a config"),
    ("name: mine\nx: ${oops\n", r"cannot be read by OmegaConf"),
    (b"name: mine\nnote: caf\xe9\n", r"is not UTF-8 text \(byte 0xe9: invalid continuation byte\)"),  # saved as Latin-1
])
def test_a_broken_file_among_the_users_configs_is_named_in_one_line(user_configs: Path, in_tmp: Path, text: str | bytes, message: str):
    """Every config file is read for the key check, so a broken one failed every command, even one
    choosing a packaged task, with YAML's or OmegaConf's traceback (an AttributeError for a list),
    or Python's UnicodeDecodeError for a file that is not UTF-8."""
    (user_configs / "task" / "broken.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    for args in (["show-config", "--task", "sst2"], ["show-config", "--task", "broken"]):
        result = run_cli(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"config file {user_configs / 'task' / 'broken.yaml'} " in result.output
        assert re.search(message, result.output) and "mend or remove it" in result.output


def test_an_option_of_ones_own_gives_the_keys_its_packaged_options_give(user_configs: Path, in_tmp: Path, tiny_model_dir: Path):
    """A trainer file without batch_size failed with KeyError once the model had loaded (leaving a
    run folder behind), a model file without name_or_path and one without progress with OmegaConf's
    traceback, and a task without labels was read as a regression. Each is named before any run,
    in one line; a file that starts from a packaged option gives every key and runs."""
    (user_configs / "trainer").mkdir()
    (user_configs / "model").mkdir()
    packaged_cpu = (CONFIG_DIR / "trainer" / "cpu.yaml").read_text()
    (user_configs / "trainer" / "nobatch.yaml").write_text("\n".join(line for line in packaged_cpu.splitlines() if not line.startswith("batch_size:")))
    (user_configs / "trainer" / "small.yaml").write_text("defaults:\n  - cpu\n  - _self_\nbatch_size: 4\n")
    (user_configs / "model" / "nameless.yaml").write_text("revision: main\n")
    (user_configs / "method" / "bare.yaml").write_text("name: bare\nalgorithm: adapt_by_pruning\ntheta_lr: 1.0e-4\n")
    (user_configs / "task" / "nolabels.yaml").write_text(MY_TASK.replace('labels: ["0", "1"]\n', ""))
    refused = {
        ("trainer=nobatch",): "trainer/nobatch.yaml has no trainer.batch_size, which every packaged trainer option gives; add it, "
                              "or start the file from a packaged option: defaults: [cpu, _self_]",
        ("--model", "nameless"): "model/nameless.yaml has no model.name_or_path",
        ("-m", "--method", "random,bare"): "method/bare.yaml has no method.encoder_dropout, method.gamma,",
        ("--task", "nolabels"): "task/nolabels.yaml has no task.labels, which every packaged task option gives; add it",
    }
    for args, message in refused.items():
        dropped = {"trainer=nobatch": "trainer.batch_size=", "--model": "model."}.get(args[0], "nothing")  # the key the file leaves out
        result = run_cli("adapt", *args, *(o for o in tiny_overrides(tiny_model_dir) if not o.startswith(dropped)))
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (args, result.output)
        assert not (in_tmp / "outputs").exists()
    assert "of algorithm adapt_by_pruning gives" in run_cli("adapt", "--method", "bare", *tiny_overrides(tiny_model_dir)).output
    result = run_cli("adapt", "trainer=small", *tiny_overrides(tiny_model_dir, "trainer.batch_size=4"))
    assert result.exit_code == 0, result.output
    assert compose(["trainer=small"]).trainer.batch_size == 4
    # a key every packaged model gives but the code reads with a default (model.revision, added later) may be left out
    (user_configs / "model" / "mine.yaml").write_text(f"name_or_path: {tiny_model_dir}\n")
    result = run_cli("adapt", "--model", "mine", *(o for o in tiny_overrides(tiny_model_dir) if not o.startswith("model.")))
    assert result.exit_code == 0, result.output
    # and so may trainer.eval_every (added later) in a trainer file written before it, which then scores at the end only,
    # or along the way where the run adds it
    (user_configs / "trainer" / "before.yaml").write_text("\n".join(line for line in packaged_cpu.splitlines() if not line.startswith("eval_every:")))
    for extra, scored in (([], False), (["+trainer.eval_every=2"], True)):
        result = run_cli("adapt", "trainer=before", *tiny_overrides(tiny_model_dir, *extra), "hydra.run.dir=" + ("scored" if scored else "plain"))
        assert result.exit_code == 0, result.output
        assert ("eval_accuracy" in (in_tmp / ("scored" if scored else "plain") / "history.jsonl").read_text()) == scored


def test_an_option_of_ones_own_names_itself(user_configs: Path, in_tmp: Path, tiny_model_dir: Path):
    """A recipe that starts from adapt_by_pruning and gives no name was named adapt_by_pruning: its
    runs went to that recipe's folders, its masks said they were that recipe's, and `report`
    averaged them into that recipe's cells as more of its seeds; a task file on sst2's was filed as
    SST-2. Each is refused before any run, naming the file and the line to add; a name given on the
    command line serves as well, and a trainer file may keep cpu's name (a label, filing nothing)."""
    (user_configs / "method" / "slower.yaml").write_text("defaults:\n  - my_recipe\n  - _self_\ntheta_lr: 1.0e-5\n")
    (user_configs / "method" / "quicker.yaml").write_text("defaults:\n  - adapt_by_pruning\n  - _self_\ntheta_lr: 1.0e-4\n")
    (user_configs / "task" / "sst2_copy.yaml").write_text("defaults:\n  - sst2\n  - _self_\nglue_dir: SST-2-copy\n")
    refused = {
        ("--method", "quicker"): "method/quicker.yaml gives no name of its own, so it takes the name of adapt_by_pruning, which it starts "
                                 "from: its runs would be filed and reported as adapt_by_pruning's; add `name: quicker` to it",
        ("--method", "slower"): "method/slower.yaml gives no name of its own, so it takes the name of my_recipe",
        ("-m", "--method", "random,quicker"): "add `name: quicker` to it",
        ("--task", "sst2_copy"): "task/sst2_copy.yaml gives no name of its own, so it takes the name of sst2, which it starts from: "
                                 "its runs would be filed and reported as sst2's; add `name: sst2_copy` to it",
    }
    for args, message in refused.items():
        result = run_cli("adapt", *args, *tiny_overrides(tiny_model_dir))
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (args, result.output)
        assert not (in_tmp / "outputs").exists()
    assert compose(["method=quicker", "method.name=quicker"]).method.name == "quicker"
    result = run_cli("adapt", "--method", "quicker", "method.name=quick", *tiny_overrides(tiny_model_dir))
    assert result.exit_code == 0, result.output
    assert only_run_dir(in_tmp / "outputs").relative_to(in_tmp / "outputs").parts[:2] == ("sst2", "quick")
    (user_configs / "trainer").mkdir()
    (user_configs / "trainer" / "small.yaml").write_text("defaults:\n  - cpu\n  - _self_\nbatch_size: 4\n")
    assert compose(["trainer=small"]).trainer.name == "cpu"


@pytest.mark.parametrize(
    "grid, message",
    [
        # failed in OmegaConf's traceback as the sweep's jobs were listed
        ("sparsity: ${oops}", "hydra.sweeper.params.sparsity=${oops} cannot be resolved: Interpolation key 'oops' not found"),
        ("seed: null", "invalid configuration: In 'experiment/my_grid': ValidationError raised while composing config; "
                       "field 'hydra.sweeper.params.seed' is not Optional"),
        # a range Hydra cannot list: Python's traceback as the jobs were listed; one without end never ended
        ("seed: range(0,3,0)", "in the grid of hydra.sweeper.params: 'seed=range(0,3,0)' has a step of 0, which never reaches its stop; give a step above 0 "
                               "(or below, to count down): range(start,stop,step)"),
        ("seed: range(0,1e400)", "in the grid of hydra.sweeper.params: 'seed=range(0,1e400)': a range's start, stop and step are finite numbers"),
        ("seed: range(0,10000)\n      method.t_small: 1,2", "the sweep crosses 10000 seed × 2 method.t_small: 20,000 jobs, more than a sweep "
                                                          "may have (10,000: prune-cli lists and checks every job before the first starts); "
                                                          "split it into smaller sweeps"),
    ],
)
def test_an_experiment_grid_that_cannot_be_read_is_refused_in_one_line(user_configs: Path, in_tmp: Path, tiny_model_dir: Path,
                                                                       grid: str, message: str):
    (user_configs / "experiment").mkdir()
    (user_configs / "experiment" / "my_grid.yaml").write_text(
        f"# @package _global_\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n      {grid}\n")
    result = run_cli("adapt", "+experiment=my_grid", *tiny_overrides(tiny_model_dir))
    assert result.exit_code != 0 and result.output.strip().splitlines() == [f"error: {message}"], result.output
    assert not (in_tmp / "outputs").exists()



def test_hydras_search_path_points_at_the_variable_that_sets_it(user_configs: Path, in_tmp: Path, tiny_model_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    """`hydra.searchpath=[file://...]` reached Hydra, while the checks read only $PRUNE_CLI_CONFIG_PATH's
    folders: the option there was refused as unknown, with no word of why."""
    monkeypatch.delenv(USER_CONFIG_ENV)
    result = run_cli("adapt", "--task", "mytask", f"hydra.searchpath=[file://{user_configs}]", *tiny_overrides(tiny_model_dir))
    assert result.exit_code != 0 and result.output.strip().splitlines() == [
        f"error: 'hydra.searchpath=[file://{user_configs}]': prune-cli adds config folders of your own to Hydra's search path from "
        f"${USER_CONFIG_ENV} (folders joined by ':'): {USER_CONFIG_ENV}={user_configs} prune-cli ..."], result.output
    assert not (in_tmp / "outputs").exists()
