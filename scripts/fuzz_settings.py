"""Every setting at odd values, through the checks and a tiny run: one-line refusals or finished runs.

    python scripts/fuzz_settings.py --model TINY_MODEL_DIR --data-dir GLUE_DIR \
        [--methods adapt_by_pruning,imp,...] [--values 0,1,1e-12,0.999999,true] [--keys method.,head.,trainer.,data.]

Why: a setting the checks let through reaches code that takes it for granted. Set to a value no
test thought of, it failed in a traceback after the training it was meant for (a float where a
count was read: `trainer.eval_batch_size=1e9`), or took the process down (`trainer.num_threads=1e9`
in libgomp, `method.rate=1e-12` listing 7e11 IMP rounds). For each method's composed config, this
sets every scalar setting under the given prefixes to each value in turn (as an override, so Hydra
reads it as the command line would), asks `adapt --dry-run`'s plan, and where the plan passes runs
it for 3 steps on the given (tiny) model in this process. Anything but a finished run or a
prune-cli refusal (`UserError`) is printed as `BAD method key=value: the exception`, and the exit
status is 3 where there was one (1 is a bad argument, as for every script). Counts and step budgets set huge make a run as long as they say,
so large values are left out of the defaults; the seventy-eighth sitting found the faults above
with them, one key at a time. The seventy-ninth swept `--values=-1,null,abc,''` (a list that starts
with "-" needs the `=`) and `--keys mask.,checkpoint.,model.,task.`: `model.name_or_path=null` or
`=0` ended a run in a traceback. The eightieth added Hydra's own settings (`--keys hydra.`; its
record of a launch and its help texts left out). The eighty-second swept `--values=nan,inf,-inf`
over `--keys method.,head.,trainer.,data.,checkpoint.,task.,model.`: 59 tracebacks, nan passing
every bound of a number setting (`head.lr=nan` in Adam) and inf making budgets without end
(`trainer.epochs=inf`); with `--values=nan,inf,-inf,2,-0.5,1.5` after the mend, none.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

from prune_cli.errors import UserError, script_entry

# Settings a sweep leaves alone: where the run goes and how it shows progress, the names that only
# label it, and the batch size of the tiny runs (one step must see a batch).
FIXED = ("trainer.device", "trainer.progress", "trainer.batch_size", "data.dir", "method.name", "method.algorithm", "trainer.name")


def scalar_keys(node: dict, prefix: str = ""):
    """The dotted keys of a config's scalar settings (lists, such as mask.include, left out)."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from scalar_keys(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            yield f"{prefix}{key}"


# Parts of Hydra's settings that are not settings: what Hydra records of a launch, and its help texts
HYDRA_RECORDS = ("runtime", "overrides", "help", "hydra_help")


def sweep(model: Path, data_dir: Path, methods: list[str], values: list[str], prefixes: tuple[str, ...]) -> tuple[int, list[str]]:
    """(runs made, what failed other than by a refusal) over every method, key and value."""
    from prune_cli import api
    from prune_cli.config import compose, launch_settings
    from prune_cli.hydra_entry import plan_adapt

    base = [f"data.dir={data_dir}", f"model.name_or_path={model}", "trainer.batch_size=8", "trainer.progress=false",
            "data.max_seq_length=64", "trainer.device=cpu", "checkpoint.every_steps=0"]
    runs, bad = 0, []
    for method in methods:
        composed = OmegaConf.to_container(compose([f"method={method}", *base]), resolve=False)
        if any(prefix.startswith("hydra") for prefix in prefixes):  # Hydra's own settings (hydra.job_logging..., hydra.launcher...)
            hydra = OmegaConf.to_container(launch_settings([f"method={method}", *base]), resolve=False)
            composed["hydra"] = {key: value for key, value in hydra.items() if key not in HYDRA_RECORDS}
        for key in scalar_keys(composed):
            if not key.startswith(prefixes) or key in FIXED:
                continue
            for value in values:
                budget = "trainer.epochs=1" if key == "trainer.max_steps" else "trainer.max_steps=3"
                overrides = [f"method={method}", *[b for b in base if not b.startswith(f"{key}=")], f"{key}={value}", budget]
                try:
                    plan_adapt(overrides, multirun=False)
                    runs += 1
                    api.adapt(overrides=overrides)
                except UserError:
                    continue
                except BaseException as exc:  # noqa: BLE001 - what this script looks for (SystemExit: Hydra's traceback path)
                    bad.append(f"{method} {key}={value}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                    print(f"BAD {bad[-1]}", flush=True)
    return runs, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a tiny model's folder (the runs train it)")
    parser.add_argument("--data-dir", type=Path, required=True, help="a GLUE folder (tests/fixtures/glue is small)")
    parser.add_argument("--methods", default="adapt_by_pruning,imp,gmp,magnitude,random,finetune,feature_extraction,adapt_by_pruning_paper")
    parser.add_argument("--values", default="0,1,1e-12,0.999999,true", help="comma-separated, as typed on a command line")
    parser.add_argument("--keys", default="method.,head.,trainer.,data.", help="comma-separated prefixes of the settings to vary")
    args = parser.parse_args()
    for path, what in ((args.model, "--model"), (args.data_dir, "--data-dir")):
        if not path.is_dir():
            raise UserError(f"{what} {path} is not a directory")
    logging.disable(logging.CRITICAL)  # the runs' own logs; their tables still print
    runs, bad = sweep(args.model, args.data_dir, args.methods.split(","), args.values.split(","), tuple(args.keys.split(",")))
    print(f"{runs} settings passed the checks and ran; {len(bad)} failed other than by a one-line refusal")
    sys.exit(3 if bad else 0)


if __name__ == "__main__":
    script_entry(main)
