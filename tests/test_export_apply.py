"""`prune-cli export` (a plain-transformers folder scoring like `evaluate`) and `apply` / TaskBank
(one base model, masks switched in place)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from conftest import FIXTURE_GLUE, forget_digests, read_metrics, run_cli, tiny_overrides

from prune_cli import export, rundir


def _run(in_tmp: Path, tiny_model_dir: Path, *args: str, name: str) -> Path:
    result = run_cli("adapt", *args, *tiny_overrides(tiny_model_dir, steps=12), f"hydra.run.dir={name}")
    assert result.exit_code == 0, result.output
    return in_tmp / name


@pytest.mark.parametrize(("task", "method", "pooling", "base"), [
    ("stsb", "adapt_by_pruning", "cls", "bert"), ("sst2", "magnitude", "cls", "bert"), ("mrpc", "finetune", "cls", "bert"),
    ("sst2", "adapt_by_pruning", "mean", "bert"), ("mrpc", "adapt_by_pruning", "cls", "roberta"), ("stsb", "finetune", "mean", "roberta"),
    ("sst2", "adapt_by_pruning", "cls", "electra"), ("mrpc", "magnitude", "cls", "xlm-roberta"), ("sst2", "adapt_by_pruning", "mean", "camembert"),
    ("mrpc", "adapt_by_pruning", "cls", "albert")])
def test_exported_folder_loads_in_plain_transformers_and_scores_like_evaluate(in_tmp: Path, request: pytest.FixtureRequest, task: str,
                                                                              method: str, pooling: str, base: str):
    """A BERT base, or another of BERT's build (its encoder under its architecture's prefix, so that
    it also loads as that architecture's plain model: RobertaModel, ElectraModel, ...)."""
    tiny_model_dir = (request.getfixturevalue({"bert": "tiny_model_dir", "roberta": "tiny_roberta_dir"}[base]) if base in ("bert", "roberta")
                      else request.getfixturevalue("tiny_encoder_dir")(base))
    run_dir = _run(in_tmp, tiny_model_dir, "--task", task, "--method", method, f"head.pooling={pooling}", name="run")
    result = run_cli("export", str(run_dir), "--out", str(in_tmp / "hf"), "--check", "--data-dir", str(FIXTURE_GLUE))
    assert result.exit_code == 0, result.output
    modeling = (in_tmp / "hf" / export.MODELING_FILE).read_text()
    assert "from prune_cli" not in modeling and "import prune_cli" not in modeling

    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from prune_cli.backbone import tokenizer_hash

    model = AutoModelForSequenceClassification.from_pretrained(str(in_tmp / "hf"), trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(in_tmp / "hf"))
    # the folder says what the run was made on, and its tokenizer is the one the run read its text with
    provenance = json.loads((in_tmp / "hf" / export.MANIFEST_FILE).read_text())
    assert provenance["tokenizer_hash"] == tokenizer_hash(tokenizer) == rundir.load_run_record(run_dir)["tokenizer_hash"]
    record = rundir.load_run_record(run_dir)  # and the rows its scores and its training came from
    assert (provenance["scored_on"], provenance["trained_on"]) == (record["scored_on"], record["trained_on"]) and record["trained_on"]["rows"] > 0
    # The raw outputs equal prune-cli's own forward pass on the run's weights.
    from prune_cli.runner import load_encoder, restore

    cfg = rundir.load_config(run_dir)
    encoder, base_hash, run_tokenizer = load_encoder(cfg, torch.device("cpu"))
    weights, head = restore(run_dir, cfg, encoder, base_hash, run_tokenizer, torch.device("cpu"))
    texts = (["a fine film", "the plot"], ["a bad film", "plot twist ."]) if task != "sst2" else (["a fine film", "the plot is thin"], None)
    batch = tokenizer(texts[0], texts[1], return_tensors="pt", padding=True)
    with torch.no_grad(), encoder.fixed(weights):
        ours = head(encoder(dict(batch)), batch["attention_mask"])
        theirs = model(**batch).logits
    assert head.pooling == pooling == model.config.prune_cli_pooling
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert read_metrics(run_dir)["metrics"] == export.score_exported(in_tmp / "hf", export.read_scored_rows(run_dir, str(FIXTURE_GLUE)))
    # the baked encoder is a plain BertModel (RobertaModel) too, with the run's weights: zeros where the mask pruned
    plain = AutoModel.from_pretrained(str(in_tmp / "hf")).eval()
    assert type(plain).__name__ == {"bert": "BertModel", "roberta": "RobertaModel", "electra": "ElectraModel",
                                    "xlm-roberta": "XLMRobertaModel", "camembert": "CamembertModel", "albert": "AlbertModel"}[base]
    with torch.no_grad(), encoder.fixed(weights):
        assert torch.allclose(plain(**batch).last_hidden_state, encoder.encoder(**batch).last_hidden_state, atol=1e-5)
    if method != "finetune":
        zeros = sum(int((p == 0).sum()) for n, p in plain.named_parameters() if n.endswith("weight") and p.dim() == 2)
        assert zeros >= read_metrics(run_dir)["num_maskable"] * 0.49


def test_a_run_on_an_encoder_export_has_no_class_for_is_refused_before_writing(in_tmp: Path, tiny_encoder_dir):
    """A Megatron-BERT (BERT's layers, normalised before rather than after each block) adapts and
    scores like a BERT, but export has no model class for it: one line naming those it has, nothing
    written."""
    from conftest import assert_one_line_error

    from prune_cli import hf_modeling

    run_dir = _run(in_tmp, tiny_encoder_dir("megatron-bert"), "--task", "sst2", name="run")
    assert run_cli("evaluate", "--check", str(run_dir)).exit_code == 0
    assert_one_line_error(run_cli("export", str(run_dir), "--out", str(in_tmp / "hf")),
                          f"export writes models of model_type {', '.join(map(repr, hf_modeling.EXPORTED))}; "
                          "this run's base has model_type 'megatron-bert'")
    assert not (in_tmp / "hf").exists() and not list(in_tmp.glob(".hf.*"))


def test_export_never_overwrites_a_folder(in_tmp: Path, tiny_model_dir: Path):
    run_dir = _run(in_tmp, tiny_model_dir, name="run")
    (in_tmp / "taken").mkdir()
    (in_tmp / "taken" / "keep.txt").write_text("mine")
    result = run_cli("export", str(run_dir), "--out", str(in_tmp / "taken"))
    assert result.exit_code == 2 and "never overwriting" in result.output
    assert (in_tmp / "taken" / "keep.txt").read_text() == "mine"
    (in_tmp / "a-file").write_text("mine")
    result = run_cli("export", str(run_dir), "--out", str(in_tmp / "a-file"))
    assert result.exit_code == 2 and f"--out {in_tmp / 'a-file'} is a file; give a new folder" in result.output


def test_an_export_that_fills_the_disk_is_one_line_and_leaves_nothing(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """safetensors reports a full disk as its own SafetensorError ("I/O error: No space left on
    device (os error 28)"), which was a traceback; now it is the line of a full disk, naming --out,
    and the half-written folder beside it is gone."""
    from conftest import assert_one_line_error, pretend_disk_free

    run_dir = _run(in_tmp, tiny_model_dir, name="run")
    def full(self, folder, *args, **kwargs):
        pretend_disk_free(monkeypatch, 0)
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(export.hf_modeling.PrunedBertForSequenceClassification, "save_pretrained", full)  # the weights, written first
    result = run_cli("export", str(run_dir), "--out", str(in_tmp / "exported"))
    assert_one_line_error(result, f"error: No space left on device ({in_tmp / 'exported'}): free some space, or write elsewhere")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["run"], "no export, and no staging folder, is left"


def test_export_check_reads_the_data_before_it_writes_the_export(in_tmp: Path, tiny_model_dir: Path):
    """`export --check` with data it cannot read stops before it exports: an export that exists
    beside a failed command would be a folder the user has to find and delete before trying again."""
    run_dir = _run(in_tmp, tiny_model_dir, name="run")
    result = run_cli("export", str(run_dir), "--out", str(in_tmp / "hf"), "--check", "--data-dir", str(in_tmp / "no-glue"))
    assert result.exit_code == 2 and "no folder" in result.output and "SST-2" in result.output
    assert not (in_tmp / "hf").exists() and "exported" not in result.output
    assert [path.name for path in in_tmp.iterdir()] == ["run"], "no staging folder is left either"


def test_an_export_check_that_finds_other_scores_ends_with_status_1(in_tmp: Path, tiny_model_dir: Path):
    """`export --check` that scores other figures than the run's metrics.json says so in one line and
    ends as diff does on a difference (1), which a script tells from input it could not check (2)."""
    run_dir = _run(in_tmp, tiny_model_dir, name="run")
    metrics = read_metrics(run_dir)
    metrics["metrics"] = {key: value + 0.5 for key, value in metrics["metrics"].items()}  # as if scored elsewhere
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    from conftest import assert_one_line_error

    result = run_cli("export", str(run_dir), "--out", str(in_tmp / "hf"), "--check", "--data-dir", str(FIXTURE_GLUE))
    assert_one_line_error(result, "--check: the exported model scores differently from the run's metrics.json", exit_code=1)


def test_task_bank_switches_masks_over_one_base(in_tmp: Path, tiny_model_dir: Path):
    from prune_cli.api import TaskBank

    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="a")
    stsb = _run(in_tmp, tiny_model_dir, "--task", "stsb", "--sparsity", "0.9", name="b")
    bank = TaskBank(device="cpu")
    assert bank.add(sst2) == "sst2" and bank.add(stsb) == "stsb"
    base_before = {n: p.clone() for n, p in bank.encoder.encoder.named_parameters()}
    first = bank.predict("stsb", [("a man plays", "a man is playing")])
    bank.predict("sst2", ["a fine film"])
    again = bank.predict("stsb", [("a man plays", "a man is playing")])
    assert first == again, "switching back gives the same answer"
    assert all(torch.equal(p, base_before[n]) for n, p in bank.encoder.encoder.named_parameters()), "the base stays untouched"
    # agrees with the run's own scoring path
    from prune_cli.runner import restore

    weights, head = restore(stsb, bank.tasks["stsb"].cfg, bank.encoder, bank.base_hash, bank.tokenizer, torch.device("cpu"))
    batch = bank.tokenizer(["a man plays"], ["a man is playing"], return_tensors="pt")
    with torch.no_grad(), bank.encoder.fixed(weights):
        assert np.isclose(float(head(bank.encoder(dict(batch)))[0, 0]), first[0], atol=1e-5)
    footprint = bank.footprint("stsb")
    assert footprint.task_bytes * 5 < footprint.finetuned_copy_bytes
    from prune_cli.errors import UserError

    with pytest.raises(UserError, match=r"sst2 takes single sentences; got \('a', 'b'\)"):  # names the input that does not fit
        bank.predict("sst2", ["a fine film", ("a", "b")])
    assert bank.predict("sst2", []) == []
    with pytest.raises(UserError, match=r"^texts takes a list of strings, not one string \('a fine film'\); e.g. predict\('sst2', \['a fine film'\]\)$"):
        bank.predict("sst2", "a fine film")  # else eleven answers, one per character
    with pytest.raises(UserError, match=r"^input ' ' has an empty sentence; give text$"):
        bank.predict("sst2", ["a fine film", " "])
    with pytest.raises(UserError, match=r"^input 'a man plays \|\|\| ' has an empty sentence; give text on each side of the pair$"):
        bank.predict("stsb", [("a man plays", "")])
    # what is no text, or no list of texts, is named, where it was a TypeError or ValueError from
    # deep inside (bytes read as a pair of numbers; batch_size=0 as range()'s zero step)
    for texts, message in ((None, r"^texts takes a list of strings, not None"), ([1], r"^an input is a string, or a pair of strings as a tuple; got 1$"),
                           ([b"ab"], r"got b'ab'$"), ([("a", 2)], r"got \('a', 2\)$")):
        with pytest.raises(UserError, match=message):
            bank.predict("stsb" if texts == [("a", 2)] else "sst2", texts)
    for size in (0, -1, 2.5, True):
        with pytest.raises(UserError, match=rf"^batch_size takes a whole number >= 1 \(got {size!r}\)$"):
            bank.predict("sst2", ["a fine film"], batch_size=size)
    assert bank.predict("sst2", ["a fine film"], batch_size=np.int64(1)) == bank.predict("sst2", ["a fine film"])
    with pytest.raises(UserError, match="no task 'cola' loaded"):
        bank.footprint("cola")
    for name in (3, "", " "):  # a name is what predict is then called with: 3 was taken, and predict("3") found nothing
        with pytest.raises(UserError, match=rf"^a task's name is a non-empty string; got {re.escape(repr(name))}$"):
            bank.add(sst2, name=name)
    assert set(bank.tasks) == {"sst2", "stsb"}


def test_apply_prints_predictions_and_bytes(in_tmp: Path, tiny_model_dir: Path):
    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="a")
    stsb = _run(in_tmp, tiny_model_dir, "--task", "stsb", name="b")
    result = run_cli("apply", str(sst2), str(stsb), "--text", "a fine film", "--text", "a man plays ||| a man is playing",
                     "--text", "a [bold]fine[/] film", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "fine-tuned copy" in result.output and "mask switched" in result.output
    assert "a [bold]fine[/] film" in result.output  # an input is shown as typed, never read as rich markup


def test_apply_refuses_a_mask_for_another_base(in_tmp: Path, tiny_model_dir: Path):
    from prune_cli import mask_format

    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="a")
    stsb = _run(in_tmp, tiny_model_dir, "--task", "stsb", name="b")
    loaded = mask_format.read_mask(stsb / rundir.MASK)
    mask_format.save_mask(stsb / rundir.MASK, loaded.masks, {**loaded.manifest, "base_weights_hash": "0" * 64})
    forget_digests(stsb)  # as a run from before digests: the manifest's own check is what this reaches
    result = run_cli("apply", str(sst2), str(stsb), "--text", "x")
    assert result.exit_code == 2 and "was learned on base weights" in result.output


def test_apply_writes_every_tasks_answers_to_a_tsv_in_input_order(in_tmp: Path, tiny_model_dir: Path):
    """`--file` and `--text` inputs, in that order after the typed ones; each cell is the task's own
    answer to that row's input (STS-B's scores differ per pair, so a shifted row would show), blank
    where the task takes the other form; the file is never overwritten."""
    from prune_cli.api import TaskBank
    from prune_cli.predictions import answer_text

    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", "head.pooling=mean", "head.lr=1e-2", name="a")
    stsb = _run(in_tmp, tiny_model_dir, "--task", "stsb", "head.pooling=mean", "head.lr=1e-2", name="b")
    (in_tmp / "inputs.txt").write_text("a fine film\n\n a man plays ||| a man is playing\nthe plot\tplot twist .\r\nthe plot is thin\n")
    out = in_tmp / "answers.tsv"
    result = run_cli("apply", str(sst2), str(stsb), "--text", "a bad film ||| a fine film", "--file", "inputs.txt", "--out", str(out), "--device", "cpu")
    assert result.exit_code == 0, result.output
    inputs = [("a bad film", "a fine film"), "a fine film", ("a man plays", "a man is playing"), ("the plot", "plot twist ."), "the plot is thin"]
    bank = TaskBank(device="cpu")
    bank.add(sst2), bank.add(stsb)
    singles, pairs = [t for t in inputs if isinstance(t, str)], [t for t in inputs if not isinstance(t, str)]
    labels = dict(zip(singles, bank.predict("sst2", singles)))  # each task's inputs in one batch, as apply runs them
    scores = dict(zip(pairs, (answer_text(bank.task_config("stsb"), v) for v in bank.predict_values("stsb", pairs))))
    expected = [["input", "sst2", "stsb"]]
    expected += [[t, labels[t], ""] if isinstance(t, str) else [" ||| ".join(t), "", scores[t]] for t in inputs]
    assert [line.split("\t") for line in out.read_text().splitlines()] == expected
    assert len({row[2] for row in expected[1:] if row[2]}) == 3, "the pairs' scores differ, so row order is tested"
    assert "wrote 5 inputs' answers" in result.output and "stsb: scores" in result.output
    assert re.search(r"sst2: negative \d+%, positive \d+%", result.output), "the shares name the classes; the TSV keeps GLUE's labels"

    before = out.read_bytes()
    again = run_cli("apply", str(sst2), "--text", "x", "--out", str(out))
    assert again.exit_code == 2 and "never overwriting" in again.output
    assert out.read_bytes() == before


def test_apply_reads_inputs_from_standard_input_and_flags_those_no_task_takes(in_tmp: Path, tiny_model_dir: Path):
    from typer.testing import CliRunner

    from prune_cli.api import TaskBank
    from prune_cli.cli import app

    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="a")
    result = CliRunner().invoke(app, ["apply", str(sst2), "--file", "-", "--device", "cpu"], input="a fine film\nx ||| y\n")
    assert result.exit_code == 0, result.output
    assert "a fine film" in result.output and "x ||| y" in result.output
    assert "1 of 2 inputs have a form no loaded task takes (sst2 takes one sentence); their answers are blank" in result.output
    bank = TaskBank(device="cpu")
    bank.add(sst2)
    named = {"0": "negative", "1": "positive"}[bank.predict("sst2", ["a fine film"])[0]]
    assert re.search(rf"a fine film\s*│\s*{named}\s*│", result.output), "the table shows the class's name, not GLUE's 0 or 1"


@pytest.mark.parametrize(("setup", "args", "fragment"), [
    (None, [], "nothing to classify"),
    (b"\n  \n", ["--file", "blank.txt"], "blank.txt holds no inputs"),
    (b"\xff\xfe a film\n", ["--file", "blank.txt"], "blank.txt is not UTF-8 text"),
    (None, ["--file", "missing.txt"], "missing.txt"),
    (None, ["--text", ""], "input '' has an empty sentence; give text"),
    (None, ["--text", "a fine film", "--text", "a fine film ||| "], "input 'a fine film ||| ' has an empty sentence; give text on each side of the pair"),
    (b"a fine film\n\ta fine film\n", ["--file", "blank.txt"], "input '\\ta fine film' has an empty sentence; give text on each side of the pair"),
])
def test_apply_refuses_inputs_it_cannot_read_in_one_line(in_tmp: Path, tiny_model_dir: Path, setup, args, fragment):
    from conftest import assert_one_line_error

    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="a")
    if setup is not None:
        (in_tmp / "blank.txt").write_bytes(setup)
    assert_one_line_error(run_cli("apply", str(sst2), *args), fragment)


def test_apply_refuses_inputs_no_loaded_task_takes(in_tmp: Path, tiny_model_dir: Path):
    """Only pairs for a single-sentence task: apply printed a table of blanks (or wrote a file of
    them with --out) and exited 0, as if it had answered; now one line says what each task takes."""
    from conftest import assert_one_line_error

    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="a")
    out = in_tmp / "answers.tsv"
    assert_one_line_error(run_cli("apply", str(sst2), "--text", "x ||| y", "--text", "a ||| b ||| c", "--out", str(out)),
                          "no input has a form a loaded task takes (sst2 takes one sentence): nothing to answer")
    assert not out.exists()


def test_inputs_keep_their_text_through_a_byte_order_mark_and_a_tsv(tmp_path: Path):
    """A file saved with a byte-order mark (Windows editors) gave its first input a U+FEFF the
    tokenizer read as text; an input given through the Python API with a tab or a line break in it
    split its row of `apply --out`'s TSV."""
    from prune_cli import api

    (tmp_path / "inputs.txt").write_bytes("\ufeffa fine film\r\nfirst\tsecond\n".encode("utf-8"))
    assert api.read_inputs(str(tmp_path / "inputs.txt")) == ["a fine film", "first\tsecond"]
    answers = api.Answers(["a\tfine\nfilm", ("the plot\r\n", "a\ttwist")], {"sst2": {0: "1"}, "stsb": {1: "3.5"}}, {}, {}, {})
    rows = [line.split("\t") for line in answers.tsv().splitlines()]
    assert rows == [["input", "sst2", "stsb"], ["a fine film", "1", ""], ["the plot ||| a twist", "", "3.5"]]


def test_exported_folder_runs_in_a_transformers_pipeline_with_the_runs_labels(in_tmp: Path, tiny_model_dir: Path):
    """The common way to serve a classifier: `pipeline("text-classification", folder)` answers with
    the classes' names (`task.label_names`: "positive", where GLUE writes "1"), the answers TaskBank
    (apply) gives on the same base, mask and head."""
    from transformers import pipeline

    from prune_cli.api import TaskBank

    run_dir = _run(in_tmp, tiny_model_dir, "--task", "sst2", "head.pooling=mean", "head.lr=1e-2", name="run")
    assert run_cli("export", str(run_dir), "--out", str(in_tmp / "hf")).exit_code == 0
    texts = ["a fine film", "the plot is thin", "a bad film", "plot twist ."]
    classify = pipeline("text-classification", model=str(in_tmp / "hf"), trust_remote_code=True, device="cpu")
    bank = TaskBank(device="cpu")
    bank.add(run_dir)
    named = {"0": "negative", "1": "positive"}
    assert [answer["label"] for answer in classify(texts)] == [named[label] for label in bank.predict("sst2", texts)]


@pytest.mark.parametrize(("task", "method"), [("sst2", "adapt_by_pruning"), ("mnli", "magnitude"), ("stsb", "finetune")])
def test_exported_folder_has_a_model_card_the_hub_can_read(in_tmp: Path, tiny_model_dir: Path, task: str, method: str):
    """The folder's README.md is a model card: huggingface_hub parses its metadata back, with each
    dev score of metrics.json (both of MNLI's dev sets) as a model-index result, and its text says
    what was pruned and that only the head was trained."""
    from huggingface_hub import ModelCard

    run_dir = _run(in_tmp, tiny_model_dir, "--task", task, "--method", method, name="run")
    assert run_cli("export", str(run_dir), "--out", str(in_tmp / "my-model")).exit_code == 0
    card = ModelCard.load(in_tmp / "my-model" / export.CARD_FILE)
    metrics = read_metrics(run_dir)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    assert card.data.base_model is None, "a local base folder is no hub id"
    assert card.data.datasets == ["nyu-mll/glue"] and card.data.model_name == "my-model"
    hub_splits = {"sst2": {"validation": ""}, "mnli": {"validation_matched": "", "validation_mismatched": "_mm"}, "stsb": {"validation": ""}}[task]
    hub_metric = {"pearson": "pearsonr"}  # the hub's metric id where it differs from ours
    expected = {(split, hub_metric.get(name, name)): round(metrics["metrics"][f"eval_{name}{suffix}"], 4)
                for split, suffix in hub_splits.items() for name in rundir.load_config(run_dir).task.metrics}
    assert {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results} == expected
    assert {r.dataset_config for r in card.data.eval_results} == {task}
    assert {r.dataset_name for r in card.data.eval_results} == {f"GLUE {rundir.load_config(run_dir).task.glue_dir}"}
    text = card.text
    assert "Scored on the first" not in text
    if method == "finetune":
        assert "fine-tuned" in text and "zero" not in text and "pruning" not in card.data.tags
    else:
        pruned = metrics["num_maskable"] - metrics["num_kept"]
        assert f"{pruned:,} of its {metrics['num_maskable']:,} maskable weights" in text and "no weight of the encoder was trained" in text
    labels = {"sst2": "Labels: `negative` (GLUE's `0`), `positive` (GLUE's `1`).",
              "mnli": "Labels: `entailment`, `neutral`, `contradiction`.", "stsb": "answers one number on the task's own scale"}[task]
    assert labels in text
    assert str(tiny_model_dir) not in text and f"A local model (`{tiny_model_dir.name}`)" in text, "a local base is named, not its path"


def test_a_model_card_of_scores_on_a_dev_slice_says_so_and_files_no_results(in_tmp: Path, tiny_model_dir: Path):
    """Scores on `data.max_eval_samples` examples are no result on GLUE's dev split: the hub metadata
    leaves them out, and the text says what they are. A cut at or above a split's size cuts nothing."""
    from prune_cli import model_card

    def card(name: str, *overrides: str) -> model_card.ModelCard:
        run_dir = _run(in_tmp, tiny_model_dir, "--task", "sst2", *overrides, name=name)
        return model_card.build(OmegaConf.to_container(rundir.load_config(run_dir), resolve=True), read_metrics(run_dir), "my-model")

    dev_slice = card("dev-slice", "data.max_eval_samples=5")  # the fixture's dev split has 12 rows
    assert dev_slice.data.eval_results is None and dev_slice.data.datasets == ["nyu-mll/glue"]
    assert "Scored on the first 5 examples of each dev split only" in dev_slice.text
    whole_dev = card("whole-dev", "data.max_eval_samples=12")
    assert whole_dev.data.eval_results and "smoke-test" not in whole_dev.text
    held_out_slice = card("held-out-slice", "data.holdout=8", "data.max_eval_samples=5").text  # named as such, not as dev's
    assert "Scored on the first 5 of those examples only (`data.max_eval_samples`), not all 8" in held_out_slice
    assert "dev split" not in held_out_slice.split("## Use")[0]
    assert "smoke-test" not in card("whole-held-out", "data.holdout=8", "data.max_eval_samples=8").text


def test_a_model_card_of_a_run_that_counted_no_split_sizes_judges_the_cut_by_its_config(in_tmp: Path, tiny_model_dir: Path):
    """metrics.json's `scored_on` had no `split_rows` before the card read it: such a run's cut is taken to bite
    on dev, and below the held-out count only."""
    from prune_cli import model_card

    run_dir = _run(in_tmp, tiny_model_dir, "--task", "sst2", "data.max_eval_samples=12", name="run")
    cfg = OmegaConf.to_container(rundir.load_config(run_dir), resolve=True)
    metrics = read_metrics(run_dir)
    assert {key: metrics["scored_on"]["dev"][key] for key in ("rows", "split_rows")} == {"rows": 12, "split_rows": 12}
    for split in metrics["scored_on"].values():
        del split["split_rows"]
    assert "smoke-test" in model_card.build(cfg, metrics, "my-model").text
    cfg["data"]["holdout"] = 12
    assert "smoke-test" not in model_card.build(cfg, metrics, "my-model").text
    cfg["data"]["holdout"] = 20
    assert "Scored on the first 12 of those examples only" in model_card.build(cfg, metrics, "my-model").text


def test_a_run_made_before_label_names_existed_takes_the_packaged_tasks(in_tmp: Path, tiny_model_dir: Path):
    """Older run dirs have no task.label_names: the packaged task's are used, for display only, and
    only where the run's labels are the packaged task's."""
    from prune_cli.runner import stored_config

    run_dir = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="run")
    stored = rundir.load_config(run_dir)
    del stored.task["label_names"]
    OmegaConf.save(stored, run_dir / rundir.CONFIG)
    assert "label_names" not in rundir.load_config(run_dir).task
    assert list(stored_config(run_dir).task.label_names) == ["negative", "positive"]
    assert run_cli("export", str(run_dir), "--out", str(in_tmp / "hf")).exit_code == 0
    assert '"1": "positive"' in (in_tmp / "hf" / "config.json").read_text()
    stored.task.labels = ["bad", "good"]
    OmegaConf.save(stored, run_dir / rundir.CONFIG)
    assert stored_config(run_dir).task.label_names is None


def test_model_card_names_the_base_model_as_the_hub_knows_it():
    from prune_cli.backbone import PACKAGED_MINILM
    from prune_cli.model_card import hub_base_model

    assert hub_base_model(PACKAGED_MINILM) == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_base_model("bert-base-uncased") == "bert-base-uncased"
    assert hub_base_model("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hub_base_model("/models/my-bert") is None and hub_base_model("./my-bert") is None


def test_apply_answers_in_another_precision_and_refuses_an_unknown_one(in_tmp: Path, tiny_model_dir: Path):
    """`apply --precision` overrides the runs' own, as `evaluate --precision` does (the same
    `runner.stored_config`): an fp32 run answers in bf16 arithmetic, close to but not its fp32 digits."""
    from conftest import assert_one_line_error

    from prune_cli.api import TaskBank

    stsb = _run(in_tmp, tiny_model_dir, "--task", "stsb", "head.pooling=mean", "head.lr=1e-2", name="b")
    pairs = [("a man plays", "a man is playing"), ("the plot", "plot twist .")]
    answers = {}
    for precision in (None, "bf16"):
        bank = TaskBank(device="cpu", precision=precision)
        bank.add(stsb)
        assert bank.tasks["stsb"].cfg.trainer.precision == (precision or "fp32")
        answers[precision] = np.array(bank.predict("stsb", pairs))
    assert not np.array_equal(answers[None], answers["bf16"]) and np.allclose(answers[None], answers["bf16"], atol=0.25)
    # it named trainer.precision only, which apply does not take
    assert_one_line_error(run_cli("apply", str(stsb), "--text", "x ||| y", "--precision", "fp8"), "trainer.precision='fp8'",
                          "--precision for a command that reads a finished run")
    assert run_cli("apply", str(stsb), "--text", "x ||| y", "--precision", "bf16", "--device", "cpu").exit_code == 0


def _pretend_hub_model(monkeypatch: pytest.MonkeyPatch, name: str, folder: Path) -> list[tuple[str, str | None]]:
    """Serve the hub model `name` from `folder` (no hub here); returns the (loader, revision) of each load of it."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    asked: list[tuple[str, str | None]] = []
    for auto in (AutoConfig, AutoModel, AutoTokenizer):
        def load(cls, name_or_path, *args, _original=auto.from_pretrained.__func__, **kwargs):
            if name_or_path == name:
                asked.append((cls.__name__, kwargs.pop("revision", None)))
                name_or_path = str(folder)
            return _original(cls, name_or_path, *args, **kwargs)
        monkeypatch.setattr(auto, "from_pretrained", classmethod(load))
    return asked


def test_a_hub_model_is_loaded_at_the_revision_the_run_pinned(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A hub name alone loads whatever its default branch holds that day; `model.revision` pins the
    weights, tokenizer and config a run pruned, for the run and for every command that reads it."""
    from conftest import assert_one_line_error

    asked = _pretend_hub_model(monkeypatch, "org/tiny-bert", tiny_model_dir)
    result = run_cli("adapt", *tiny_overrides(tiny_model_dir, "model.name_or_path=org/tiny-bert", "model.revision=v1.2"), "hydra.run.dir=pinned")
    assert result.exit_code == 0, result.output
    run = in_tmp / "pinned"
    assert sorted(set(asked)) == [("AutoConfig", "v1.2"), ("AutoModel", "v1.2"), ("AutoTokenizer", "v1.2")]
    assert read_metrics(run)["model_revision"] == "v1.2"
    asked.clear()
    assert run_cli("evaluate", str(run)).exit_code == 0
    assert asked and all(revision == "v1.2" for _, revision in asked)
    assert run_cli("export", str(run), "--out", str(in_tmp / "hf")).exit_code == 0
    assert "`org/tiny-bert` (revision `v1.2`)" in (in_tmp / "hf" / "README.md").read_text()
    assert json.loads((in_tmp / "hf" / "prune_cli_manifest.json").read_text())["model_revision"] == "v1.2"
    result = run_cli("evaluate", str(run), "--model", str(tiny_model_dir))  # a local copy of the model at that revision
    assert result.exit_code == 0, result.output
    result = run_cli("export", str(run), "--out", str(in_tmp / "hf-from-copy"), "--model", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    assert "`org/tiny-bert` (revision `v1.2`)" in (in_tmp / "hf-from-copy" / "README.md").read_text(), "the card names the run's own base"
    assert_one_line_error(run_cli("adapt", *tiny_overrides(tiny_model_dir, "model.revision=v1.2")),
                          f"model.revision=v1.2 picks a version of a Hugging Face hub model, but {tiny_model_dir} is a local folder",
                          "leave model.revision unset")
