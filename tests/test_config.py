"""Every shipped config composes, and bad choices fail at composition with one clear line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import method_needs
from omegaconf import OmegaConf

from prune_cli.config import _dotted_keys, check_overrides, compose, group_options, key_sources, launch_settings, sweep_jobs
from prune_cli.errors import UserError
from prune_cli.methods import METHODS

GLUE_TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb"]


def test_all_eight_glue_tasks_are_configured():
    assert group_options("task") == GLUE_TASKS


def test_method_registry_matches_method_configs(tmp_path: Path):
    algorithms = {compose([f"method={name}", *method_needs(name, tmp_path)]).method.algorithm for name in group_options("method")}
    assert algorithms == set(METHODS)


def test_paper_recipe_sets_its_own_budget_and_head_but_command_line_wins():
    paper = compose(["method=adapt_by_pruning_paper"])
    assert (paper.head.lr, paper.trainer.batch_size, paper.trainer.max_steps) == (2e-5, 8, None)
    assert paper.method.gamma_schedule == "constant" and paper.method.theta_lr == 2e-5
    assert compose(["method=adapt_by_pruning_paper", "trainer.max_steps=10"]).trainer.max_steps == 10


@pytest.mark.parametrize("task", GLUE_TASKS)
@pytest.mark.parametrize("method", group_options("method"))
def test_every_task_and_method_composes(task: str, method: str, tmp_path: Path):
    cfg = compose([f"task={task}", f"method={method}", *method_needs(method, tmp_path)])
    assert cfg.task.name == task
    assert cfg.method.name == method
    assert cfg.task.main_metric in cfg.task.metrics
    assert set(cfg.task.tsv.dev_files) == set(cfg.task.hub.dev_splits)
    assert "dev" in cfg.task.tsv.dev_files
    composed = {k for k in _dotted_keys(OmegaConf.to_container(cfg, resolve=False), "") if not k.startswith("hydra")}
    assert composed <= set(key_sources()), "the check of override keys would refuse a real key"


def test_interpolations_that_resolve_compose_and_hydras_own_are_left_to_the_job():
    """`check_interpolations` refuses only what cannot resolve: a setting from another one, a
    resolver Hydra registers (now), and Hydra's own, which answers only inside a job, all compose."""
    cfg = compose(["method.gamma=${trainer.batch_size}", "trainer.name=${now:%Y}", "tag=${hydra:job.name}"])
    assert cfg.method.gamma == cfg.trainer.batch_size and cfg.trainer.name.isdigit()


def test_a_sparsity_from_an_interpolation_is_checked_at_its_value(monkeypatch: pytest.MonkeyPatch):
    """The override's check of a sparsity read `${oc.env:S}` as its text and refused it as "not a
    number" (written escaped, '$\\{oc.env\\:S\\}'), though it resolves to one; now its value is checked."""
    monkeypatch.setenv("PRUNE_CLI_TEST_SPARSITY", "0.7")
    assert float(compose(["sparsity=${oc.env:PRUNE_CLI_TEST_SPARSITY}"]).sparsity) == 0.7
    monkeypatch.setenv("PRUNE_CLI_TEST_SPARSITY", "1.5")
    with pytest.raises(UserError, match=re.escape("sparsity=1.5 is outside [0, 1)")):
        compose(["sparsity=${oc.env:PRUNE_CLI_TEST_SPARSITY}"])


def test_scientific_notation_values_are_floats():
    cfg = compose([])
    assert isinstance(cfg.method.t_large, float) and cfg.method.t_large == 1e5
    assert isinstance(cfg.method.gamma, float)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=sst3"], "unknown task 'sst3'; choose from: cola, mnli"),
        (["method=magic"], "unknown method 'magic'"),
        (["model=gpt9"], "unknown model 'gpt9'"),
        # an option spelt as a person would (its case, a dash, its start, a letter off) is named
        (["task=SST2"], "unknown task 'SST2'; choose from: cola, mnli, mrpc, qnli, qqp, rte, sst2, stsb; did you mean 'sst2'?"),
        (["method=adapt-by-pruning"], "; did you mean 'adapt_by_pruning'?"),
        (["method=magnitud"], "; did you mean 'magnitude'?"),
        (["model=bert-base"], "unknown model 'bert-base'; choose from: bert-base-uncased, minilm; did you mean 'bert-base-uncased'?"),
        (["sparsity=1.0"], "outside [0, 1)"),
        (["sparsity=-0.1"], "outside [0, 1)"),
        (["sparsity=half"], "is not a number"),
        (["sparsity=0.5,0.9"], "'sparsity=0.5,0.9' lists several values; one config is composed here: give one value (`prune-cli adapt -m`"),
        (["task=="], "invalid override"),
        (["+experiment=nope"], "unknown experiment 'nope'; choose from: paper_fig2"),
        (["trainer.max_step=3"], "no config key 'trainer.max_step'; did you mean 'trainer.max_steps'?"),
        (["+trainer.max_step=3"], "no config key 'trainer.max_step'; did you mean 'trainer.max_steps'?"),
        (["++method.gama=1e-6"], "did you mean 'method.gamma'?"),
        (["~trainer.nope"], "no config key 'trainer.nope'"),
        # a deleted setting ended the run in Hydra's traceback (method.gamma) or the dry run in OmegaConf's (seed)
        (["~method.gamma"], "'~method.gamma' deletes method.gamma, which prune-cli reads; set it instead (method.gamma=..., or "
                            "method.gamma=null where it takes null"),
        (["~seed"], "'~seed' deletes seed, which prune-cli reads"),
        (["~trainer"], "'~trainer' removes the trainer choice, which every run needs; choose one instead: trainer=cpu|gpu"),
        # an interpolation that cannot resolve passed the checks unread: OmegaConf's traceback in the dry run, or (a tag's) after training
        (["seed=${seed}"], "seed=${seed} cannot be resolved: Recursive interpolation detected"),
        (["tag=${oc.env:PRUNE_CLI_NO_SUCH_VARIABLE}"], "tag=${oc.env:PRUNE_CLI_NO_SUCH_VARIABLE} cannot be resolved: KeyError raised while "
                                                        "resolving interpolation: \"Environment variable 'PRUNE_CLI_NO_SUCH_VARIABLE' not found\""),
        (["mask.include=[query,${nope}]"], "mask.include[1]=${nope} cannot be resolved: Interpolation key 'nope' not found"),
        # a sampling sweeper's range, which no composition can take one value of: Hydra's traceback
        (["sparsity=interval(0,1)"], "'sparsity=interval(0,1)' is an interval"),
        (["method.round_steps=3"], "'method.round_steps' does not exist with these choices; it is a setting of method=imp"),
        (["+method.round_steps=3"], "would never be read: method.round_steps is a setting of method=imp, not of method=adapt_by_pruning"),
        (["trainer.device=tpu"], "trainer.device='tpu' is not supported; use auto, cpu, cuda or cuda:N"),
        (["trainer.precision=fp8"], "trainer.precision='fp8'; choose one of"),
        (["seed=abc"], "seed='abc' must be an integer >= 0"),
        # numpy's seeds stop at 2**32 - 1: past it the run failed mid-start with a traceback
        (["seed=4294967296"], "seed=4294967296 must be an integer >= 0 and <= 4294967295"),
        (["data.holdout_seed=4294967296"], "data.holdout_seed=4294967296 must be an integer >= 0 and <= 4294967295"),
        (["trainer.max_steps=2.5"], "trainer.max_steps=2.5 must be an integer >= 1, or null"),
        # 1e9 is a float to Hydra: it passed as a whole number, and scoring failed in range() after the training
        (["trainer.eval_batch_size=1e9"], "trainer.eval_batch_size=1000000000.0 must be an integer >= 1 (write it without a decimal point "
                                          "or exponent: trainer.eval_batch_size=1000000000)"),
        (["trainer.max_steps=2000.0"], "trainer.max_steps=2000.0 must be an integer >= 1, or null (write it without"),
        # torch.set_num_threads(10**9) aborted the process in libgomp, asking for 216 GB
        (["trainer.num_threads=1000000000"], "trainer.num_threads=1000000000 must be an integer >= 1 and <= 1024, or null"),
        # the rounds were listed one by one, some 7e11 of them, until the process was killed for memory
        (["method=imp", "method.rate=1e-12"], "IMP rounds to reach sparsity 0.5 (each a fine-tuning, its mask kept); give a rate that takes "
                                              "at most 50 (the paper's 0.2 takes 4)"),
        (["method=imp", "sparsity=0.9", "method.rate=0.01"], "method.rate=0.01 takes 230 IMP rounds to reach sparsity 0.9"),
        (["head.lr=-1"], "head.lr=-1 must be a number > 0"),
        (["method.t_small=0"], "method.t_small=0 must be a number > 0"),
        # nan passed every bound (each comparison false) and failed the run in torch's traceback (Adam's lr, dropout's p);
        # inf ran, to a loss of nan ("lower the learning rates") or a budget of inf steps
        # gmp's ramp backwards ran as one cut to s at start_fraction, with nothing said
        (["method=gmp", "method.start_fraction=0.9", "method.end_fraction=0.5"],
         "method.start_fraction=0.9 is after method.end_fraction=0.5: gmp's cubic ramp prunes from the one to the other"),
        # the fine-tuning loop's warm-up past the budget trained at a fraction of method.lr throughout, with nothing said
        (["method=gmp", "method.warmup_fraction=2"], "method.warmup_fraction=2 must be in [0, 1]: the share of the fine-tuning budget"),
        (["method=finetune", "method.warmup_fraction=-0.5"], "method.warmup_fraction=-0.5 must be in [0, 1]"),
        (["head.lr=nan"], "head.lr=nan must be a number > 0 (a finite one"),
        (["head.dropout=nan"], "head.dropout=nan must be a number >= 0 and < 1 (a finite one"),
        (["method=gmp", "method.start_fraction=nan"], "method.start_fraction=nan must be a number >= 0 and <= 1 (a finite one"),
        (["method.warmup_fraction=nan"], "method.warmup_fraction=nan must be a number (a finite one"),
        (["head.weight_decay=inf"], "head.weight_decay=inf must be a number >= 0 (a finite one"),
        (["trainer.epochs=-inf"], "trainer.epochs=-inf must be a number > 0, or null (a finite one"),
        (["checkpoint.keep=yes"], "checkpoint.keep='yes' must be true or false"),
        (["method.hold_fraction=most"], "method.hold_fraction='most' must be a number"),
        (["mask.include=['(']"], "mask.include pattern '(' is not a regular expression"),
        # one pattern typed as a string was read character by character (q, u, e, r, y), masking far more
        (["mask.include=query"], "mask.include='query' is not a list; it takes a list of regular expressions on parameter names, "
                                 "such as mask.include=[query]"),
        (["mask.exclude=LayerNorm"], "mask.exclude='LayerNorm' is not a list"),
        (["mask.include=null"], "mask.include=null is not a list"),
        (["mask.include=[]"], "mask.include=[] selects no weight to mask"),
        (["mask.include=[query,1]"], "mask.include holds 1, which is not a regular expression (text)"),
        # a list label failed the run after its training, writing metrics.json (a traceback, the run lost)
        (["tag=[a]"], "tag=['a'] is a list; it takes one value (text), such as tag=long-ramp"),
        (["method.name=[a]"], "method.name=['a'] is a list; it takes one value (text)"),
        (["trainer.name={a:1}"], "trainer.name={'a': 1} is a mapping; it takes one value (text)"),
        (["data.dir=[a]"], "data.dir=['a'] is a list; it takes one value (text), such as data.dir=/data/glue"),
        # a name is one folder of outputs/<task>/<method>/...: '..' filed the run in outputs/s0.5/ (or outside outputs/),
        # 'a/b' two folders deep, null in a folder called None, '' left the method's folder out
        (["method.name=.."], "method.name='..' names one folder of the run's path (outputs/<task>/<method>/...): give a name "
                             "without '/' or '\\' that is not '.' or '..', such as method.name=my-name"),
        (["task.name=.."], "task.name='..' names one folder of the run's path"),
        (["method.name=a/b"], "method.name='a/b' names one folder of the run's path"),
        (["task.name=a\\b"], "task.name='a\\\\b' names one folder of the run's path"),
        (["method.name=null"], "method.name=null gives no name, and it names the run's folder and its cell in reports: give one, "
                               "such as method.name=my-name"),
        (["task.name=null"], "task.name=null gives no name"),
        (["method.name=''"], "method.name='' gives no name"),
        (["method.name=' '"], "method.name=' ' gives no name"),
        # a text typed as a number whose text Hydra does not keep: a commit looked for on the hub as "inf", a tag "1000.0"
        (["model.revision=12e4567"], "'model.revision=12e4567': Hydra reads model.revision's value as the number inf, not the text "
                                     "typed; quote it to keep the text: model.revision='12e4567'"),
        (["tag=1e3"], "'tag=1e3': Hydra reads tag's value as the number 1000.0, not the text typed; quote it to keep the text: tag='1e3'"),
        (["tag=1.50"], "Hydra reads tag's value as the number 1.5"),
        (["task.hub.revision=1_000"], "Hydra reads task.hub.revision's value as the number 1000"),
        # the model is named in one key only, so a label cannot claim another model than the one loaded
        (["model.name=bert-base-uncased"], "no config key 'model.name'; did you mean 'model.name_or_path'?"),
    ],
)
def test_bad_values_fail_at_composition(overrides: list[str], message: str):
    with pytest.raises(UserError) as err:
        compose(overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_an_added_key_is_accepted_where_the_chosen_method_reads_it():
    """`+` adds a setting the chosen file leaves out, when the same algorithm reads it."""
    paper = compose(["method=adapt_by_pruning_paper", "+method.unseen_tokens_first=true"])
    assert paper.method.unseen_tokens_first is True
    assert compose(["method=imp", "method.round_steps=3"]).method.round_steps == 3
    assert compose(["hydra.run.dir=/tmp/x", "++method.gamma=1e-6"]).method.gamma == 1e-6


def test_every_scalar_setting_has_a_rule(tmp_path: Path):
    """A number or flag added to a config file without a rule in SETTINGS would go unchecked."""
    from prune_cli.config import OWN_CHECKS, SETTINGS

    scalars = set()
    for method in group_options("method"):
        cfg = compose([f"method={method}", *method_needs(method, tmp_path)])
        scalars |= {key for key in _dotted_keys(OmegaConf.to_container(cfg, resolve=False), "") if not key.startswith(("task.", "hydra"))
                    and isinstance(OmegaConf.select(cfg, key), (bool, int, float))}
    assert scalars - set(OWN_CHECKS) <= set(SETTINGS)
    assert set(SETTINGS) <= set(key_sources()), "a rule for a key no config file has"


def test_every_text_setting_is_a_checked_choice_or_named_free(tmp_path: Path):
    """A text setting added to a config file, read by code that falls back on anything it does
    not recognise, would run the fall-back on a typo; each one must be a choice or be listed."""
    from prune_cli.config import FREE_OR_OWN_TEXT, choices

    texts = set()
    for method in group_options("method"):
        for trainer in group_options("trainer"):
            cfg = compose([f"method={method}", f"trainer={trainer}", *method_needs(method, tmp_path)])
            texts |= {key for key in _dotted_keys(OmegaConf.to_container(cfg, resolve=False), "")
                      if not key.startswith(("task.", "hydra")) and isinstance(OmegaConf.select(cfg, key), str)}
            for key, options in choices().items():
                value = OmegaConf.select(cfg, key, default=None)
                assert value is None or value in options, f"{method}/{trainer}: {key}={value!r}"
    assert texts - set(FREE_OR_OWN_TEXT) == set(choices())


def test_a_cuda_device_must_be_visible(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert compose(["trainer.device=cuda:1"]).trainer.device == "cuda:1"
    with pytest.raises(UserError, match=r"only 2 CUDA GPU\(s\) are visible \(cuda:0 to cuda:1\)"):
        compose(["trainer.device=cuda:2"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        compose(["trainer.device=cuda"])


def test_sweep_values_are_each_checked_under_multirun():
    check_overrides(["task=sst2,mrpc", "sparsity=0.5,0.9"], multirun=True)
    with pytest.raises(UserError, match="unknown task 'nope'"):
        check_overrides(["task=sst2,nope"], multirun=True)
    with pytest.raises(UserError, match="outside"):
        check_overrides(["sparsity=0.5,1.5"], multirun=True)


def test_a_text_typed_as_a_number_is_taken_where_its_text_is_kept_and_refused_where_it_is_not():
    """`tag=2`, `tag=0.5` and `data.dir=5` keep their text, and so do true and false (as "true" and
    "false"); `tag=1e3` (read as 1000.0) does not, in a sweep's values too."""
    for kept in (["tag=2"], ["tag=0.5"], ["data.dir=5"], ["tag=true"], ["tag='1e3'"], ["model.revision='12e4567'"]):
        check_overrides(kept)
    check_overrides(["tag=0.5,2,abc", "seed=range(0,2)"], multirun=True)
    check_overrides(["tag=choice(0.5,abc)"], multirun=True)
    check_overrides(["tag=range(1,3)"], multirun=True)
    for changed, number in ((["tag=1e3,abc"], "1000.0"), (["tag=choice(abc,1.50)"], "1.5"), (["tag=shuffle(1_000,abc)"], "1000")):
        with pytest.raises(UserError, match=re.escape(f"Hydra reads a value of tag as the number {number}, not the text typed; quote each "
                                                      "such value to keep its text (tag='1e3','1.50')")):
            check_overrides(changed, multirun=True)


def test_a_sweeps_jobs_are_the_ones_hydras_basic_sweeper_launches():
    """An experiment's grid (hydra.sweeper.params) first, the command line's values replacing its
    own for the same key, crossed; a glob over a group's options expands (it once raised)."""
    def jobs_of(overrides: list[str]) -> list[list[str]]:
        return sweep_jobs(overrides, launch_settings(overrides))

    jobs = jobs_of(["+experiment=paper_fig2_cpu", "task=mrpc", "seed=1,2"])
    assert len(jobs) == 5 * 2 * 2 and all("task=mrpc" in job and "+experiment=paper_fig2_cpu" in job for job in jobs)
    assert sorted({entry for job in jobs for entry in job if entry.startswith(("seed=", "sparsity="))}) == \
        ["seed=1", "seed=2", "sparsity=0.5", "sparsity=0.9"]
    assert jobs_of(["method=glob(*m*)", "seed=range(1,3)"]) == \
        [[f"method={method}", f"seed={seed}"] for method in ("gmp", "imp", "magnitude", "random") for seed in (1, 2)]
    assert jobs_of(["task=sst2"]) == [["task=sst2"]]


def test_budget_is_whichever_limit_comes_first():
    from prune_cli.training import plan_budget

    assert plan_budget({"batch_size": 32, "max_steps": 2000, "epochs": 5}, 67349).total_steps == 2000  # SST-2
    assert plan_budget({"batch_size": 32, "max_steps": 2000, "epochs": 5}, 5749).total_steps == 900  # STS-B
    assert plan_budget({"batch_size": 8, "max_steps": None, "epochs": 3}, 100).total_steps == 39
    assert plan_budget({"batch_size": 8, "max_steps": 7, "epochs": None}, 100).total_steps == 7
    with pytest.raises(UserError, match="both unset"):
        plan_budget({"batch_size": 8, "max_steps": None, "epochs": None}, 100)


def test_a_model_given_by_path_is_the_only_model_the_stored_config_names(tmp_path: Path):
    """`--model ./my-bert` once kept the default's label (`model.name: minilm`) beside the path it
    loaded; a run's stored config must name the model it pruned and no other."""
    from prune_cli.config import options_to_overrides

    folder = tmp_path / "my-bert"
    folder.mkdir()
    cfg = compose(options_to_overrides(None, None, None, str(folder), None))
    assert OmegaConf.to_container(cfg.model) == {"name_or_path": str(folder), "revision": None}
    assert OmegaConf.to_container(compose(["model=bert-base-uncased"]).model) == {"name_or_path": "bert-base-uncased", "revision": None}


def test_the_largest_seeds_allowed_are_ones_every_generator_takes():
    """The bound on seed and data.holdout_seed is the one numpy sets; a run seeded with it starts."""
    import numpy as np

    from prune_cli.config import SEED
    from prune_cli.runner import seed_everything

    assert compose([f"seed={int(SEED.high)}", f"data.holdout_seed={int(SEED.high)}"]).seed == 2**32 - 1
    seed_everything(int(SEED.high))
    np.random.RandomState(int(SEED.high))
    with pytest.raises(ValueError):
        np.random.RandomState(int(SEED.high) + 1)


def test_a_composed_config_without_a_setting_the_checks_read_names_it():
    """What check_own_option cannot see (a stored config for --resume, an option an experiment
    chooses) still fails in one line naming the key, where it was OmegaConf's traceback."""
    from omegaconf import open_dict

    from prune_cli.config import check_config

    cfg = compose([])
    with open_dict(cfg):
        del cfg.trainer["precision"]
    with pytest.raises(UserError, match=r"^the composed config has no trainer.precision, which prune-cli reads: a trainer config file "
                                        r"of your own leaves it out; add it, or start it from a packaged one \(defaults: \[cpu, _self_\] at its top\)$"):
        check_config(cfg)


ODD_VALUES = [[1], {"a": 1}, "x", 5, -1, 0, 1e9, True, None, ""]


@pytest.mark.parametrize("task", ["sst2", "cola", "mrpc"])
def test_no_value_of_any_key_fails_the_checks_in_a_traceback(task: str, monkeypatch: pytest.MonkeyPatch):
    """Every key of the composed config (each section, the task's layout, data, mask, head, trainer,
    model and the default method's settings), set to each of ODD_VALUES, passes the checks a
    config meets when composed or is refused in one line, and so does reading its rows as a dry
    run reads them. Such a sweep found a list label (`tag=[a]`) that failed the run after its
    training, numbers, lists and null where a folder, file, column or switch was read (`data.dir=[a]`,
    `task.glue_dir: 5`, a named column in a file without a header, `tsv.header: null`), a float
    where a count was read (`trainer.eval_batch_size=1e9`), and a section replaced whole (`data=x`).
    A mapping is merged into a section, as Hydra merges `data={a: 1}`; $GLUE_DIR is unset, so that
    only the value tried decides where the rows are read."""
    import copy

    from conftest import FIXTURE_GLUE

    from prune_cli.config import check_config
    from prune_cli.hydra_entry import rows_to_train

    monkeypatch.delenv("GLUE_DIR", raising=False)
    composed = compose([f"task={task}", f"data.dir={FIXTURE_GLUE}"])
    keys = [key for key in _dotted_keys(OmegaConf.to_container(composed, resolve=False), "") if not key.startswith("hydra")]
    failures = []
    for key in keys:
        for value in ODD_VALUES:
            cfg = copy.deepcopy(composed)
            OmegaConf.set_struct(cfg, False)
            OmegaConf.update(cfg, key, value, merge=isinstance(value, dict) and OmegaConf.is_dict(OmegaConf.select(cfg, key)))
            try:
                check_config(cfg)
                rows_to_train(cfg, {})
            except UserError as refused:
                assert "\n" not in str(refused), (key, value, str(refused))
            except Exception as exc:  # noqa: BLE001 - what this test looks for
                failures.append(f"{key}={value!r}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
