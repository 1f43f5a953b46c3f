"""Shared fixtures: a tiny random BERT saved to disk, the fixture GLUE folder, and a run helper.

Tests run the real code paths (Hydra, the CLI, safetensors, the training loop) on a model small
enough that a whole `adapt` takes about a second.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
FIXTURE_GLUE = Path(__file__).resolve().parent / "fixtures" / "glue"
TINY_POSITIONS = 64  # the tiny random BERT's position embeddings
# GLUE_DIR (the README sets it to ../shared/glue) is resolved now, before tests change directory.
SHARED_GLUE = Path(os.environ.get("GLUE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "glue").resolve()


def load_script(name: str) -> ModuleType:
    """A file of scripts/ imported as a module, so its helpers can be tested without running it."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fixture_words() -> list[str]:
    """The tiny model's vocabulary: every token of the labelled fixture files. The test files use
    the same words; leaving them out keeps the tiny model (and what tests tuned on it) unchanged."""
    words: set[str] = set()
    for path in FIXTURE_GLUE.rglob("*.tsv"):
        if path.name.startswith("test") or path.parent.name == "diagnostic":
            continue
        for token in path.read_text(encoding="utf-8-sig").lower().replace("\t", " ").split():
            words.add(token.strip('"'))
    return sorted(w for w in words if w)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT with its own WordPiece vocabulary, saved like a hub model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", '"', "?", ".", *_fixture_words()]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=48, max_position_embeddings=TINY_POSITIONS, type_vocab_size=2,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random RoBERTa (BERT's encoder, positions numbered from padding_idx + 1)
    with a byte-level BPE learnt from the fixture files, whose tokenizer, as saved by hand, names no
    `model_max_length`: the model's positions are the only bound on a sequence's length."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-roberta")
    bpe = ByteLevelBPETokenizer()
    bpe.train([str(p) for p in sorted(FIXTURE_GLUE.rglob("*.tsv"))], vocab_size=400, show_progress=False,
              special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:] if line.strip()]
    tokenizer = RobertaTokenizerFast(vocab=json.loads((folder / "vocab.json").read_text()), merges=merges)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=48, max_position_embeddings=TINY_POSITIONS + 2, type_vocab_size=1,
                           pad_token_id=tokenizer.pad_token_id)
    RobertaModel(config).save_pretrained(folder)
    return folder


# Other encoders of BERT's build, each with the tokenizer of the tiny model it shares its numbering of
# positions with (`tiny_model_dir`'s WordPiece from 0, `tiny_roberta_dir`'s BPE from padding_idx + 1)
OTHER_ENCODERS = {"electra": "bert", "albert": "bert", "megatron-bert": "bert", "xlm-roberta": "roberta", "camembert": "roberta"}


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, tiny_roberta_dir: Path) -> Callable[[str], Path]:
    """A folder of a tiny random encoder of `OTHER_ENCODERS`' model_type (2 layers, 32 wide; ELECTRA's
    and ALBERT's embeddings 16 wide, projected), made on first use."""
    import torch
    from transformers import AutoConfig, AutoModel

    made: dict[str, Path] = {}

    def folder(model_type: str) -> Path:
        if model_type not in made:
            tokenizer_from = {"bert": tiny_model_dir, "roberta": tiny_roberta_dir}[OTHER_ENCODERS[model_type]]
            base = AutoConfig.from_pretrained(tokenizer_from)
            out = tmp_path_factory.mktemp(f"tiny-{model_type}")
            shutil.copytree(tokenizer_from, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("config.json", "*.safetensors"))
            shape = {"vocab_size": base.vocab_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "intermediate_size": 48, "max_position_embeddings": base.max_position_embeddings,
                     "type_vocab_size": base.type_vocab_size, "pad_token_id": base.pad_token_id}
            if model_type in ("electra", "albert"):
                shape["embedding_size"] = 16
            torch.manual_seed(0)
            AutoModel.from_config(AutoConfig.for_model(model_type, **shape)).save_pretrained(out)
            made[model_type] = out
        return made[model_type]

    return folder


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty folder so that outputs/ lands there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GLUE_DIR", raising=False)
    return tmp_path


def tiny_overrides(model_dir: Path, *extra: str, steps: int = 6) -> list[str]:
    """The tiny model's run settings, then `extra`; an extra that sets one of those keys (`data.dir=...`)
    takes its place, since prune-cli refuses a key given twice."""
    defaults = [
        f"data.dir={FIXTURE_GLUE}",
        f"model.name_or_path={model_dir}",
        f"trainer.max_steps={steps}",
        "trainer.batch_size=8",
        "trainer.progress=false",
        "trainer.device=cpu",
        f"data.max_seq_length={TINY_POSITIONS}",  # the tiny model's positions (longer would be cut, with a warning)
    ]
    from prune_cli.rundir import override_key

    replaced = {override_key(o) for o in extra}
    return [*(o for o in defaults if override_key(o) not in replaced), *extra]


def tiny_context(model_dir: Path, sparsity: float, method: dict, precision: str = "fp32"):
    """A method's RunContext on the tiny model and the fixture SST-2, outside any run directory,
    for tests that drive a loop step by step; `method` is the method config, given whole."""
    from omegaconf import OmegaConf

    from prune_cli.config import compose
    from prune_cli.runner import prepare
    from prune_cli.training import RunContext, plan_budget

    cfg = compose(tiny_overrides(model_dir, f"trainer.precision={precision}", steps=6))
    prepared = prepare(cfg, with_train=True)
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["sparsity"] = sparsity
    plain["method"] = method
    return RunContext(cfg=plain, task=plain["task"], encoder=prepared.encoder, train=prepared.train, dev=prepared.dev,
                      device=prepared.device, budget=plan_budget(plain["trainer"], len(prepared.train)), seed=1,
                      num_outputs=2, regression=False)


def run_cli(*args: str):
    """Invoke the real Typer app in-process; returns the click Result."""
    from typer.testing import CliRunner

    from prune_cli.cli import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def assert_one_line_error(result, *fragments: str, exit_code: int = 2) -> None:
    """Bad input's contract: exit code 2 (75 for a folder in use, 1 for a --check that found other
    scores), one `error:` line holding every fragment, no traceback."""
    assert result.exit_code == exit_code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)


def method_needs(method: str, folder: Path) -> list[str]:
    """The overrides composing `method=<name>` needs besides: `transfer` must name a run with a
    mask (here a two-weight mask file, half pruned, so at sparsity 0.5), and nothing else needs any."""
    if method != "transfer":
        return []
    import torch

    from prune_cli import mask_format

    run = folder / "mask-run"
    run.mkdir(exist_ok=True)
    mask_format.save_mask(run / "mask.safetensors", {"weight": torch.tensor([True, False])}, {})
    return [f"method.mask_run={run}", "sparsity=0.5"]


def only_run_dir(root: Path) -> Path:
    """The single run directory (the folder holding .hydra) below `root`."""
    found = [p.parent for p in root.rglob(".hydra")]
    assert len(found) == 1, found
    return found[0]


class Killed(BaseException):
    """Stands in for SIGKILL in-process: a BaseException skips every `except Exception` cleanup."""


def crash_at(monkeypatch: pytest.MonkeyPatch, global_step: int) -> None:
    """Let the run die after `global_step` optimiser steps, counted over all of its phases (each
    step's record reported, and its checkpoint, where one is due, saved)."""
    from prune_cli import checkpointing

    original = checkpointing.Checkpointer.maybe_save
    calls = {"n": 0}

    def dying(self, phase, steps_done, state):
        original(self, phase, steps_done, state)
        calls["n"] += 1
        if calls["n"] == global_step:
            raise Killed(f"killed in {phase} at {steps_done}")

    monkeypatch.setattr(checkpointing.Checkpointer, "maybe_save", dying)


def forget_digests(run_dir: Path) -> None:
    """Make `run_dir`'s record one written before metrics.json held its files' digests, so that a
    test that edits a mask reaches the checks of the file itself, as such a run's readers do."""
    from prune_cli import rundir

    record = rundir.read_json_record(run_dir / rundir.METRICS)
    del record[rundir.WRITTEN_DIGESTS]
    (run_dir / rundir.METRICS).write_text(json.dumps(record))


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(autouse=True)
def _logging_as_it_was():
    """Each test leaves the process's logging as it found it. An in-process run sets logging up as
    Hydra does: handlers on the test's captured output, closed once the test ends, and the DEBUG
    levels of `hydra.verbose`. A later test that logged through them printed "--- Logging error ---"
    and a traceback, which the one-line-error checks then failed on, in an order the suite's files
    happen not to run in (tests/test_fuzz_settings_script.py, then tests/test_cli.py)."""
    root = logging.getLogger()
    handlers, level, disabled = root.handlers[:], root.level, logging.root.manager.disable
    levels = {name: logger.level for name, logger in logging.Logger.manager.loggerDict.items() if isinstance(logger, logging.Logger)}
    yield
    for handler in root.handlers[:]:
        if handler not in handlers and type(handler).__module__ == "logging":  # Hydra's; pytest's own capture handlers are its own to remove
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    logging.disable(disabled)
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


@pytest.fixture(autouse=True)
def _quiet_and_single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, and one intra-op thread (here and in subprocesses): a tiny model gains nothing from
    more, and a second busy-waiting OpenMP thread makes every test slower on a shared machine."""
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pretend_disk_free(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    """Make `shutil.disk_usage` say `free` bytes are left, as `rundir.out_of_space` reads it: a
    library's own error counts as a full disk only where the disk really is (nearly) full."""
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(1 << 30, (1 << 30) - free, free))


def pretend_read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make `folder`, and every folder below it, refuse new files and folders with EROFS, as a
    read-only mount does, whoever runs the tests (permission bits do not bind root, and a test
    cannot mount): `os.mkdir`, and `os.open` asked to create, raise there; reading goes on."""
    import errno
    import os

    root = folder.absolute()

    def refusing(real, creates):
        def call(path, *args, **kwargs):
            if isinstance(path, (str, os.PathLike)) and creates(args, kwargs):
                target = Path(path).absolute()
                if target.parent == root or root in target.parents:
                    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "mkdir", refusing(os.mkdir, lambda args, kwargs: True))
    monkeypatch.setattr(os, "open", refusing(os.open, lambda args, kwargs: bool((args[0] if args else kwargs.get("flags", 0)) & os.O_CREAT)))


@contextlib.contextmanager
def held_by_another_process(folder: Path):
    """Hold `folder` from a real second process for the block, as a prune-cli run (or sweep) going
    on there holds it (`folder_lock`), then let that process end."""
    holder_code = ("import sys; from pathlib import Path; from prune_cli import folder_lock; "
                   "folder_lock.hold(Path(sys.argv[1]), 'held by the test'); print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", holder_code, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)


def folder_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (relative path -> bytes): to show that a command left it as it was."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def pretend_disk_full(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make the disk under `folder` full, as far as `os.write` goes: files and folders are still made
    there (a full disk mostly still has inodes), but the bytes written to a file opened there are
    refused with ENOSPC."""
    import errno

    root = folder.absolute()
    full: set[int] = set()
    real_open, real_write, real_close = os.open, os.write, os.close

    def opening(path, flags, *args, **kwargs):
        descriptor = real_open(path, flags, *args, **kwargs)
        if isinstance(path, (str, os.PathLike)) and root in Path(path).absolute().parents:
            full.add(descriptor)
        return descriptor

    def writing(descriptor, data):
        if descriptor in full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(descriptor, data)

    def closing(descriptor):
        full.discard(descriptor)
        return real_close(descriptor)

    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "write", writing)
    monkeypatch.setattr(os, "close", closing)
