"""Every method on the tiny model: exact sparsity, a complete run dir, and method-specific facts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import method_needs, only_run_dir, read_metrics, run_cli, tiny_context, tiny_overrides

from prune_cli.config import group_options
from prune_cli.methods import DENSE, METHODS
from prune_cli.methods.baselines import imp_levels

PRUNING = sorted(set(METHODS) - DENSE - {"transfer"})  # transfer scores another run's mask: tested below


@pytest.mark.parametrize("method", PRUNING)
@pytest.mark.parametrize("sparsity", ["0.5", "0.9"])
def test_pruning_method_hits_sparsity_and_writes_run_dir(in_tmp: Path, tiny_model_dir: Path, method: str, sparsity: str):
    result = run_cli("adapt", "--task", "sst2", "--method", method, "--sparsity", sparsity, *tiny_overrides(tiny_model_dir, steps=8))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["method"] == method
    assert abs(metrics["sparsity_realized"] - float(sparsity)) <= 0.001
    assert metrics["base_weights_unchanged"] and "pretrained weights unchanged: True" in " ".join(result.output.split())
    assert {"metrics.json", "mask.safetensors", "head.safetensors", "history.jsonl"} <= {p.name for p in run_dir.iterdir()}
    if method in {"gmp", "imp"}:
        assert "finetuned_eval_accuracy" in metrics["method_details"]
    from prune_cli.api import evaluate

    assert evaluate(run_dir).metrics == metrics["metrics"]


def test_transfer_scores_another_tasks_mask_with_a_fresh_head_on_this_task(in_tmp: Path, tiny_model_dir: Path):
    """The STS-B mask, bit for bit, on MRPC: a head trained on MRPC, the run filed at the mask's
    sparsity, saying where its mask came from, and re-scored by `evaluate` like any pruning run,
    from its own files once the STS-B run is gone."""
    from prune_cli import mask_format
    from prune_cli.api import evaluate

    learnt = run_cli("adapt", "--task", "stsb", "--sparsity", "0.5", "hydra.run.dir=stsb-run", *tiny_overrides(tiny_model_dir, steps=8))
    assert learnt.exit_code == 0, learnt.output
    source = in_tmp / "stsb-run"
    result = run_cli("adapt", "--task", "mrpc", "--method", "transfer", "--sparsity", "0.5", "method.mask_run=stsb-run",
                     "hydra.run.dir=mrpc-run", *tiny_overrides(tiny_model_dir, steps=8))
    assert result.exit_code == 0, result.output
    run_dir = in_tmp / "mrpc-run"
    metrics = read_metrics(run_dir)
    given, kept = (mask_format.read_mask(d / "mask.safetensors") for d in (source, run_dir))
    assert given.masks.keys() == kept.masks.keys()
    assert all(torch.equal(given.masks[n], kept.masks[n]) for n in given.masks)
    assert kept.manifest["task"] == "mrpc" and given.manifest["task"] == "stsb"
    assert metrics["sparsity_realized"] == read_metrics(source)["sparsity_realized"]
    details = metrics["method_details"]
    assert details["mask_task"] == "stsb" and details["mask_method"] == "adapt_by_pruning" and details["mask_seed"] == read_metrics(source)["seed"]
    assert details["mask_run"] == str(source.resolve()) and abs(details["mask_sparsity"] - metrics["sparsity_realized"]) < 1e-12
    assert set(metrics["metrics"]) == {"eval_accuracy", "eval_f1"} and metrics["base_weights_unchanged"]
    assert [r["phase"] for r in map(json.loads, (run_dir / "history.jsonl").read_text().splitlines())] == ["head"] * 8
    shutil.rmtree(source)  # the run holds its mask: it stands alone
    assert evaluate(run_dir).metrics == metrics["metrics"]


def test_transfer_scores_an_imp_rounds_mask_file(in_tmp: Path, tiny_model_dir: Path):
    """An earlier IMP round's ticket (masks/round02-s0.3600...) given as method.mask_run: scored bit
    for bit at its own sparsity, the run saying which round it came from. It was refused as "not a
    directory", where only the run's last round could be transferred."""
    from prune_cli import mask_format

    imp = run_cli("adapt", "--method", "imp", "--sparsity", "0.5", "hydra.run.dir=imp-run", *tiny_overrides(tiny_model_dir, "method.round_steps=2"))
    assert imp.exit_code == 0, imp.output
    ticket = next((in_tmp / "imp-run" / "masks").glob("round02-*.safetensors"))
    result = run_cli("adapt", "--task", "mrpc", "--method", "transfer", "--sparsity", "0.36", f"method.mask_run={ticket}",
                     "hydra.run.dir=mrpc-run", *tiny_overrides(tiny_model_dir, steps=4))
    assert result.exit_code == 0, result.output
    given, kept = (mask_format.read_mask(path) for path in (ticket, in_tmp / "mrpc-run" / "mask.safetensors"))
    assert all(torch.equal(given.masks[n], kept.masks[n]) for n in given.masks)
    details = read_metrics(in_tmp / "mrpc-run")["method_details"]
    assert (details["mask_method"], details["mask_imp_round"], details["mask_run"]) == ("imp", 2, str(ticket.resolve()))
    refused = run_cli("adapt", "--task", "mrpc", "--method", "transfer", "--sparsity", "0.5", f"method.mask_run={ticket}",
                      *tiny_overrides(tiny_model_dir, steps=4))
    assert refused.exit_code == 2 and "holds a mask at sparsity 0.3600, not 0.5" in " ".join(refused.output.split())


@pytest.mark.parametrize("method", sorted(DENSE))
def test_dense_references_write_run_dir_and_reproduce(in_tmp: Path, tiny_model_dir: Path, method: str):
    result = run_cli("adapt", "--task", "stsb", "--method", method, "--sparsity", "0.0", *tiny_overrides(tiny_model_dir, steps=6))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["sparsity_realized"] == 0.0 and not (run_dir / "mask.safetensors").exists()
    assert (run_dir / "encoder.safetensors").exists() == (method == "finetune")
    assert metrics["base_weights_unchanged"]  # even fine-tuning trains a copy, never the base
    said = " ".join(result.output.split())  # rich wraps the console at its width
    assert "pretrained weights unchanged: True" in said
    assert ("the run's own copy" in said) == (method == "finetune")  # so a True is not read as "not fine-tuned"
    from prune_cli.api import evaluate

    assert evaluate(run_dir).metrics == metrics["metrics"]


def test_imp_levels_prune_a_fifth_of_the_remainder_and_stop_exactly():
    assert imp_levels(0.5, 0.2) == pytest.approx([0.2, 0.36, 0.488, 0.5])
    assert imp_levels(0.2, 0.2) == pytest.approx([0.2])
    assert imp_levels(0.9, 0.2)[-1] == 0.9 and len(imp_levels(0.9, 0.2)) == 11


def test_imp_keeps_intermediate_masks(in_tmp: Path, tiny_model_dir: Path):
    result = run_cli("adapt", "--task", "sst2", "--method", "imp", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, "method.round_steps=2"))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    from prune_cli import mask_format

    files = sorted((run_dir / "masks").glob("*.safetensors"))
    manifests = [mask_format.read_manifest(p) for p in files]
    assert [round(m["sparsity_realized"], 3) for m in manifests] == [0.2, 0.36, 0.488], "in round order by name"
    assert [m["imp_round"] for m in manifests] == [1, 2, 3]


def test_imp_keeps_every_round_where_levels_round_alike(in_tmp: Path, tiny_model_dir: Path):
    """Near a high target the rounds' levels agree to four decimals (0.99979 and 0.99983 at the
    paper's 20%): each round still gets its own file, where one used to replace the other."""
    result = run_cli("adapt", "--task", "sst2", "--method", "imp", "--sparsity", "0.9999",
                     *tiny_overrides(tiny_model_dir, "method.round_steps=1", "head.retrain_steps=1"))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    from prune_cli import mask_format

    rounds = len(imp_levels(0.9999, 0.2))
    manifests = [mask_format.read_manifest(p) for p in sorted((run_dir / "masks").glob("*.safetensors"))]
    assert [m["imp_round"] for m in manifests] == list(range(1, rounds))
    assert [m["sparsity_requested"] for m in manifests] == pytest.approx(imp_levels(0.9999, 0.2)[:-1])


def test_imp_rewinds_to_pretrained_weights_every_round(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path):
    """Every round must start from the pretrained values, whatever the previous round learned."""
    from prune_cli.methods import baselines, loops

    starts: list[dict[str, torch.Tensor]] = []
    real = loops.pretrained_params

    def spy(ctx):
        params = real(ctx)
        starts.append({n: p.detach().clone() for n, p in params.items()})
        return params

    monkeypatch.setattr(loops, "pretrained_params", spy)
    ctx = tiny_context(tiny_model_dir, sparsity=0.36, method={"algorithm": "imp", "optimizer": "adamw", "lr": 1e-2, "weight_decay": 0.0, "warmup_fraction": 0.0, "rate": 0.2, "round_steps": 3})
    base = {n: p.detach().clone() for n, p in ctx.encoder.encoder.named_parameters()}
    baselines.imp(ctx)
    rounds = [s for s in starts if set(s) == set(base)]
    assert len(rounds) == 2
    for snapshot in rounds:
        for name, value in base.items():
            assert torch.equal(snapshot[name], value), name
    assert all(torch.equal(p, base[n]) for n, p in ctx.encoder.encoder.named_parameters())


def test_every_method_config_has_a_registered_algorithm(tmp_path: Path):
    from prune_cli.config import compose

    for name in group_options("method"):
        cfg = compose([f"method={name}", *method_needs(name, tmp_path)])
        assert cfg.method.name == name and cfg.method.algorithm in METHODS


@pytest.mark.parametrize("multi_tensor", [False, True])
def test_word_embedding_rows_and_step_buffers_match_the_plain_path(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   multi_tensor: bool):
    """Gathering only a batch's word-embedding rows, reusing each theta's memory across steps and
    computing every effective weight in multi-tensor kernels (the GPU path, forced on this CPU) are
    optimisations: theta, losses and the stop point must equal the plain path (every row masked
    every step, one fresh tensor per weight every step) exactly."""
    from omegaconf import OmegaConf

    from prune_cli.config import compose
    from prune_cli.methods import adapt_by_pruning
    from prune_cli.methods.adapt_by_pruning import MaskLearner
    from prune_cli.methods.loops import HeadTrainer

    method = OmegaConf.to_container(compose([]).method)
    results = []
    for variant in ("optimised", "every row", "plain"):
        with monkeypatch.context() as patch:
            patch.setenv("PRUNE_CLI_MULTI_TENSOR", "1" if multi_tensor and variant != "plain" else "0")
            if variant != "optimised":
                patch.setattr(adapt_by_pruning, "token_table_name", lambda encoder: None)
            ctx = tiny_context(tiny_model_dir, sparsity=0.5, method=method)
            learner = MaskLearner(ctx, HeadTrainer(ctx, 6))
        gathered = variant == "optimised"
        assert learner.token_table == ("embeddings.word_embeddings.weight" if gathered else None)
        assert len(learner._whole) == len(learner.state.theta) - gathered
        if multi_tensor and variant != "plain":
            assert learner._step_buffers is None
        else:
            assert len(learner._step_buffers) == len(learner._whole)
        if variant == "plain":
            learner._step_buffers = {}  # every weight one fresh tensor per step
        batches = ctx.batches()
        losses = [learner.step(step, next(batches)) for step in range(6)]
        results.append((losses, [t.detach().clone() for t in learner.state.theta], learner.pruned_share))
    (losses_a, theta_a, share_a) = results[0]
    assert all(0 < share < 1 for _, _, share in results)
    for losses_b, theta_b, share_b in results[1:]:
        assert losses_a == losses_b and share_a == share_b
        for a, b in zip(theta_a, theta_b):
            assert torch.equal(a, b)


def test_theta_is_views_of_one_buffer_and_a_per_tensor_checkpoint_loads_into_them(tiny_model_dir: Path):
    """theta per weight is a view into one flat buffer (the push and bookkeeping run over it once);
    a checkpoint whose theta are separate tensors (every checkpoint written before the flat
    buffer) loads into those views, and the push then sees the loaded values."""
    from omegaconf import OmegaConf

    from prune_cli.config import compose
    from prune_cli.methods.adapt_by_pruning import MaskLearner
    from prune_cli.methods.loops import HeadTrainer

    ctx = tiny_context(tiny_model_dir, sparsity=0.5, method=OmegaConf.to_container(compose([]).method))
    learner = MaskLearner(ctx, HeadTrainer(ctx, 4))
    state = learner.state
    storage = state.flat.untyped_storage().data_ptr()
    assert all(t.untyped_storage().data_ptr() == storage for t in state.theta)
    assert sum(t.numel() for t in state.theta) == state.flat.numel() == state.total
    batches = ctx.batches()
    learner.step(0, next(batches))
    saved = learner.state_dict()
    old_format = {**saved, "theta": [t.detach().clone() for t in saved["theta"]],
                  "ever_pruned": [e.clone() for e in saved["ever_pruned"]]}
    expected = torch.cat([t.reshape(-1) for t in old_format["theta"]])
    learner.step(1, next(batches))
    assert not torch.equal(state.flat, expected)
    learner.load_state_dict(old_format)
    assert torch.equal(state.flat, expected)
    assert all(t.untyped_storage().data_ptr() == storage for t in state.theta)
    pushed = state.push_and_track(0.5, False, -20.0 / 1e5)  # a push past every theta_0
    assert pushed == 1.0 and torch.equal(state.flat, expected - 0.5)


@pytest.mark.parametrize(
    ("schedule", "factors"),
    [
        # warm-up over half the 6-step budget, then decay to zero where the ramp ends (the budget's end)
        ({"warmup_fraction": 0.5, "theta_lr_decay": True, "prune_fraction": 1.0}, [1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3]),
        # the ramp ends at step 3: alpha is zero from there, however long the head goes on alone
        ({"theta_lr_decay": True, "prune_fraction": 0.5}, [1, 2 / 3, 1 / 3, 0, 0, 0]),
        # held at s to the budget's end: the decay reaches zero there instead
        ({"theta_lr_decay": True, "prune_fraction": 0.5, "hold_fraction": 0.5}, [1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]),
        ({}, [1] * 6),  # the default: constant alpha
    ],
)
def test_theta_learning_rate_warms_up_and_decays_over_the_pruning_ramp(tiny_model_dir: Path, schedule: dict, factors: list[float]):
    from omegaconf import OmegaConf

    from prune_cli.config import compose
    from prune_cli.methods.adapt_by_pruning import MaskLearner
    from prune_cli.methods.loops import HeadTrainer

    method = {**OmegaConf.to_container(compose(["method=adapt_by_pruning_stop_at_s"]).method), **schedule}  # alpha's schedule over Alg. 1's ramp
    ctx = tiny_context(tiny_model_dir, sparsity=0.5, method=method)
    assert ctx.budget.total_steps == 6
    learner = MaskLearner(ctx, HeadTrainer(ctx, 6))
    batches = ctx.batches()
    used = []
    for step in range(6):
        used.append(learner.optimizer.param_groups[0]["lr"] / method["theta_lr"])
        learner.step(step, next(batches))
    assert used == pytest.approx(factors)


@pytest.mark.parametrize("decay", [False, True])
def test_hold_theta_lr_is_thetas_rate_while_held_at_s_and_theta_lr_before(tiny_model_dir: Path, decay: bool):
    """method.hold_theta_lr: each optimiser step of theta uses theta_lr until s is reached and the
    held rate from the first held step on, times the same schedule factor; the scheduler's own rate
    is left as it was (a resumed run starts from it), and a held rate equal to theta_lr is the run
    without one, bit for bit."""
    from omegaconf import OmegaConf

    from prune_cli.config import compose
    from prune_cli.methods.adapt_by_pruning import MaskLearner
    from prune_cli.methods.loops import HeadTrainer

    default = {**OmegaConf.to_container(compose([]).method), "prune_fraction": 0.5, "hold_fraction": 0.5, "theta_lr_decay": decay}
    alpha = default["theta_lr"]
    thetas = []
    for held in (None, alpha, alpha / 4):
        ctx = tiny_context(tiny_model_dir, sparsity=0.5, method={**default, "hold_theta_lr": held})
        learner = MaskLearner(ctx, HeadTrainer(ctx, 6))
        step_rates: list[float] = []
        learner.optimizer.register_step_pre_hook(lambda optimizer, *_: step_rates.append(optimizer.param_groups[0]["lr"]))
        batches = ctx.batches()
        scheduled, holding = [], []
        for step in range(6):
            scheduled.append(learner.optimizer.param_groups[0]["lr"])
            holding.append(learner.holding)
            learner.step(step, next(batches))
        thetas.append(torch.cat([t.detach().flatten() for t in learner.state.theta]))
        assert holding[0] is False and holding[-1] is True, holding
        factors = [rate / alpha for rate in scheduled]
        assert factors == pytest.approx([1 - step / 6 for step in range(6)] if decay else [1.0] * 6)
        rate_held = alpha if held is None else held
        assert step_rates == pytest.approx([(rate_held if h else alpha) * f for h, f in zip(holding, factors)], rel=1e-12)
        assert learner.optimizer.param_groups[0]["lr"] == pytest.approx(alpha * (1 - 6 / 6 if decay else 1.0))
    assert torch.equal(thetas[0], thetas[1]), "hold_theta_lr = theta_lr must be the run without it"
    assert not torch.equal(thetas[0], thetas[2])


def test_theta_beta1_sets_adams_average_for_theta_and_defaults_to_torchs(tiny_model_dir: Path):
    """method.theta_beta1 reaches theta's Adam (and only it). Adam's first step is the same for any
    beta1 (the bias correction undoes it), so theta agrees after one step and parts after the next."""
    from omegaconf import OmegaConf

    from prune_cli.config import compose
    from prune_cli.methods.adapt_by_pruning import MaskLearner
    from prune_cli.methods.loops import HeadTrainer

    default = OmegaConf.to_container(compose([]).method)
    thetas = {}
    for betas in ((0.9, 0.999), (0.99, 0.999)):
        ctx = tiny_context(tiny_model_dir, sparsity=0.5, method={**default, "theta_beta1": betas[0]})
        heads = HeadTrainer(ctx, 6)
        learner = MaskLearner(ctx, heads)
        assert learner.optimizer.param_groups[0]["betas"] == betas
        assert heads.optimizer.param_groups[0]["betas"] == (0.9, 0.999)  # the head keeps torch's
        batches = ctx.batches()
        trace = []
        for step in range(3):
            learner.step(step, next(batches))
            trace.append(torch.cat([t.detach().flatten() for t in learner.state.theta]).clone())
        thetas[betas] = trace
    torch_default, longer = thetas[(0.9, 0.999)], thetas[(0.99, 0.999)]
    assert (torch_default[0] - longer[0]).abs().max() < 1e-8  # equal up to the last bits of the bias correction
    assert (torch_default[2] - longer[2]).abs().max() > 1e-6  # alpha is 5e-5: a different average moves theta visibly
    without_key = {k: v for k, v in default.items() if k != "theta_beta1"}  # e.g. a config from before the option
    ctx = tiny_context(tiny_model_dir, sparsity=0.5, method=without_key)
    assert MaskLearner(ctx, HeadTrainer(ctx, 6)).optimizer.param_groups[0]["betas"] == (0.9, 0.999)


def test_head_warmup_trains_the_head_alone_first_then_prunes_to_the_exact_target(in_tmp: Path, tiny_model_dir: Path):
    """head_warmup_fraction: the first steps train only the head on the dense encoder (sparsity 0
    throughout), then the ramp prunes from there and still ends at exactly s."""
    import json

    from prune_cli import rundir

    result = run_cli("adapt", "--sparsity", "0.5", "method=adapt_by_pruning_stop_at_s", "method.head_warmup_fraction=0.25", "method.prune_fraction=0.75", "trainer.epochs=null",
                     *tiny_overrides(tiny_model_dir, steps=16))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    history = [json.loads(line) for line in (run_dir / rundir.HISTORY).read_text().splitlines()]
    phases = [record["phase"] for record in history]
    assert phases[:4] == ["warmup"] * 4 and phases[4] == "prune" and "warmup" not in phases[4:]
    assert [record["step"] for record in history] == list(range(1, 17))
    assert all(record["sparsity"] == 0.0 for record in history[:4])
    assert 0.0 < history[4]["sparsity"] < 0.5, "the ramp starts after the warm-up, not at its own step 4"
    metrics = read_metrics(run_dir)
    assert abs(metrics["sparsity_realized"] - 0.5) <= 0.001
    assert metrics["method_details"]["pruning_steps"] <= 13  # the ramp ends at step 12; the last hair may take one more


def test_hold_keeps_learning_the_mask_at_s_until_its_share_of_the_budget(in_tmp: Path, tiny_model_dir: Path):
    """hold_fraction: once the ramp reaches s, theta goes on learning with the pruned share held at
    s every step until (prune_fraction + hold_fraction) of the budget; the mask it ends with is
    not the one it had when s was first reached, and it is still exactly s."""
    import json

    from safetensors.torch import load_file

    from prune_cli import rundir

    common = ["--sparsity", "0.5", "method=adapt_by_pruning_stop_at_s", "method.prune_fraction=0.25", "trainer.epochs=null",
              *tiny_overrides(tiny_model_dir, steps=40)]
    assert run_cli("adapt", *common, "hydra.run.dir=alg1").exit_code == 0
    result = run_cli("adapt", *common, "method.hold_fraction=0.5", "hydra.run.dir=held")
    assert result.exit_code == 0, result.output
    alg1, held = read_metrics(in_tmp / "alg1"), read_metrics(in_tmp / "held")
    reached = held["method_details"]["target_reached_step"]
    assert alg1["method_details"]["pruning_steps"] == reached <= 11, "up to s the two runs are the same run"
    assert "target_reached_step" not in alg1["method_details"]
    assert held["method_details"]["pruning_steps"] == 30
    history = [json.loads(line) for line in (in_tmp / "held" / rundir.HISTORY).read_text().splitlines()]
    assert [r["phase"] for r in history] == ["prune"] * 30 + ["head"] * 10
    # the first held step undoes the ramp's last overshoot (0.54 on this tiny model), lifting theta;
    # from then on every step's push takes the share back to s within the sample's resolution
    first, rest = history[reached]["sparsity"], [r["sparsity"] for r in history[reached + 1:30]]
    assert history[reached - 1]["sparsity"] > 0.52 and abs(first - 0.5) < 5e-3
    assert all(abs(share - 0.5) < 1e-3 for share in rest), rest
    assert abs(held["sparsity_realized"] - 0.5) <= 0.001
    masks = [load_file(in_tmp / run / rundir.MASK) for run in ("alg1", "held")]
    assert any(not torch.equal(masks[0][name], masks[1][name]) for name in masks[0]), "theta stopped learning at s"


def test_encoder_dropout_changes_mask_learning_only_and_scoring_stays_deterministic(in_tmp: Path, tiny_model_dir: Path):
    """method.encoder_dropout: the mask-learning losses change (dropout is on), the head phase and
    scoring run in eval mode, so `evaluate` still reproduces the recorded scores exactly."""
    import json

    from prune_cli import rundir
    from prune_cli.api import evaluate

    losses = {}
    for flag in ("false", "true"):
        result = run_cli("adapt", "--sparsity", "0.5", f"method.encoder_dropout={flag}", f"hydra.run.dir=outputs/{flag}",
                         *tiny_overrides(tiny_model_dir, steps=8))
        assert result.exit_code == 0, result.output
        run_dir = in_tmp / "outputs" / flag
        history = [json.loads(line) for line in (run_dir / rundir.HISTORY).read_text().splitlines()]
        losses[flag] = [(r["phase"], r["loss"]) for r in history]
        metrics = read_metrics(run_dir)
        assert abs(metrics["sparsity_realized"] - 0.5) <= 0.001
        assert evaluate(run_dir).metrics == metrics["metrics"]
    prune_steps = [i for i, (phase, _) in enumerate(losses["false"]) if phase == "prune"]
    assert prune_steps and losses["true"][0] != losses["false"][0]
    assert [p for p, _ in losses["true"]] == [p for p, _ in losses["false"]]


@pytest.mark.parametrize("size", [1, 2, 7, 1000, 4097])
def test_quantile_by_selection_is_torch_quantile_to_the_bit(size: int):
    from prune_cli.methods.adapt_by_pruning import quantile_by_selection

    generator = torch.Generator().manual_seed(size)
    for ties in (False, True):
        sample = torch.randn(size, generator=generator) * 1e-3
        if ties:  # repeated values, as a pushed theta has
            sample = (sample * 1e4).round() / 1e4
        for q in [0.0, 1.0, 0.5, 0.37, 0.999, 1e-7, *torch.rand(20, generator=generator).tolist()]:
            assert quantile_by_selection(sample, q) == float(torch.quantile(sample, q)), (size, ties, q)


def test_unseen_token_rows_are_the_vocabulary_the_training_split_never_uses():
    import numpy as np

    from prune_cli.batching import Encoded
    from prune_cli.methods.adapt_by_pruning import unseen_token_rows

    split = Encoded(fields={"input_ids": [np.array([2, 5, 3]), np.array([2, 7, 7, 3])]}, labels=torch.zeros(2), pad_ids={"input_ids": 0})
    assert unseen_token_rows(split, 9).tolist() == [True, True, False, False, True, False, True, False, True]


@pytest.mark.parametrize("sparsity", [0.5, 0.05])
def test_unseen_tokens_first_prunes_the_rows_the_task_never_reads_before_anything_else(in_tmp: Path, tiny_model_dir: Path, sparsity: float):
    """method.unseen_tokens_first: never-seen rows go first and count towards s, which stays exact.
    Above their share they are all pruned; below it, part of them is, and next to nothing else."""
    from prune_cli import mask_format, rundir
    from prune_cli.methods.adapt_by_pruning import unseen_token_rows

    result = run_cli("adapt", "--sparsity", str(sparsity), "method.unseen_tokens_first=true", "trainer.epochs=null",
                     *tiny_overrides(tiny_model_dir, steps=12))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    metrics = read_metrics(run_dir)
    details = metrics["method_details"]
    assert abs(metrics["sparsity_realized"] - sparsity) <= 0.001
    share = details["unseen_token_share"]
    assert 0.05 < share < 0.5, "the fixture's vocabulary holds every task's words; SST-2's training split uses a part"
    masks = mask_format.read_mask(run_dir / rundir.MASK).masks
    table = masks["embeddings.word_embeddings.weight"]
    ctx = tiny_context(tiny_model_dir, sparsity=sparsity, method={})
    unseen = unseen_token_rows(ctx.train, table.shape[0])
    assert details["unseen_token_weights_kept"] == int(table[unseen].sum())
    if sparsity > share:
        assert not table[unseen].any()
    else:  # every pruned weight is an unseen row's
        # the push takes unseen rows first; only a weight the task pushes down itself (or one of
        # near-zero magnitude, whose theta_0 is as small) goes beside them
        pruned_unseen = int((~table[unseen]).sum())
        pruned_seen = sum(int((~m).sum()) for m in masks.values()) - pruned_unseen
        assert 0 < pruned_unseen < int(table[unseen].numel()) and pruned_seen <= 0.01 * pruned_unseen


def test_unseen_tokens_first_without_a_maskable_word_embedding_is_a_one_line_error(in_tmp: Path, tiny_model_dir: Path):
    result = run_cli("adapt", "method.unseen_tokens_first=true", "mask.include=['^encoder\\..*\\.weight$']", *tiny_overrides(tiny_model_dir))
    assert result.exit_code == 2 and "mask.include" in result.output and "Traceback" not in result.output
