"""The run-directory contract: the only module that knows file names, and how they are written.

A run directory is self-describing:

    .hydra/config.yaml   resolved config (written by Hydra)     -> how to rebuild everything
    mask.safetensors     bit-packed mask + manifest              -> `mask_format`
    masks/round<NN>-s<level>.safetensors  earlier masks a method passed through (imp rounds)
    head.safetensors     task head weights
    encoder.safetensors  trained encoder weights (dense fine-tuning only; others keep w0)
    history.jsonl        one JSON record per optimiser step, appended as the run trains (`LiveHistory`)
    checkpoint/          training state for `--resume` (state.pt + progress.json); removed at a
                         clean finish unless checkpoint.keep=true
    run.log              the log (Hydra's file handler)
    metrics.json         identity + scores; written LAST, so its presence means "complete"
    failed.json          a sweep job that failed: its error and traceback (`report` lists it)

A sweep folder holds Hydra's `multirun.yaml` (the sweep's command, which `adapt --resume
SWEEP_DIR` runs again: `load_sweep`), one run directory per job, and `.dense_references/`: one
claim per dense reference run, so that the sweep runs it once whatever sparsities it covers
(`claim_sweep_run`).

Every artifact is written atomically (temp file in the same folder, fsync, rename): a killed run
never leaves a half-written file that a later `evaluate` or `report` would read as complete. The
one file a run writes as it goes, history.jsonl, is written whole again at its end, and only a run
without metrics.json (one still going, or stopped) is read with a last line still being written.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prune_cli import folder_lock
from prune_cli.errors import NO_SPACE, UserError, first_line, os_problem, yaml_problem

HYDRA_DIR = Path(".hydra")  # Hydra writes it (config, overrides, its own settings) as a run starts
CONFIG = HYDRA_DIR / "config.yaml"
CONFIG_SECTIONS = ("task", "model", "method", "trainer", "data")  # every run's config has had these; rebuilding a run reads each
OVERRIDES = HYDRA_DIR / "overrides.yaml"  # the command-line overrides Hydra recorded
HYDRA_SETTINGS = HYDRA_DIR / "hydra.yaml"  # Hydra's own settings for the run, with the folder it was launched from
# Config keys that may name a path on this machine: a relative one is relative to that folder.
PATH_KEYS = ("data.dir", "model.name_or_path", "task.hub.dataset", "method.mask_run")
MASK = "mask.safetensors"
HEAD = "head.safetensors"
ENCODER = "encoder.safetensors"
EARLIER_MASKS = "masks"
HISTORY = "history.jsonl"
METRICS = "metrics.json"
FAILED = "failed.json"  # a sweep job's error, where a job that failed left its folder
LOG = "run.log"
CHECKPOINT = Path("checkpoint")
CHECKPOINT_STATE = CHECKPOINT / "state.pt"
CHECKPOINT_PROGRESS = CHECKPOINT / "progress.json"
RESULT_FILES = (MASK, HEAD, HISTORY, METRICS)
WRITTEN_DIGESTS = "file_sha256"  # metrics.json: each file a run wrote that is read back, by name, with its SHA-256
MODEL_FILES = (MASK, ENCODER, HEAD)  # what a finished run is put back together from
DIGESTED = (*MODEL_FILES, HISTORY)
# In a sweep folder: one file per dense reference run, claimed by the first job that runs it
SWEEP_CLAIMS = Path(".dense_references")
# In a sweep folder: one file per job folder, claimed by the first job sent there; and one file
# per job sent to a folder another job has (a `hydra.sweep.subdir` that leaves out what tells them
# apart), or held by another process (`folder_lock`): a failed.json there would mark the other
# job's run as failed, so the job's error goes here, where the launching process reads it
SWEEP_FOLDERS = Path(".job_folders")
SWEEP_FOLDER_CLASHES = Path(".folder_clashes")
SWEEP_RECORD = "multirun.yaml"  # Hydra writes it in a sweep folder: the sweep's overrides and launch folder
# Hydra overrides of a recorded sweep that its continuation sets afresh
SWEEP_OWN_OVERRIDES = ("hydra.mode", "hydra.sweep.dir", "hydra.searchpath")


def earlier_mask(round_number: int, level: float) -> Path:
    """An IMP round's mask, named by its round and its level: by level alone (four decimals) the
    rounds near a high target shared a name, `imp` at s = 0.9999 wrote 41 rounds into 38 files,
    each later round replacing an earlier one. Rounds number from 1 and sort in order by name."""
    return Path(EARLIER_MASKS) / f"round{round_number:02d}-s{level:.4f}.safetensors"


def default_mode(base: int = 0o666) -> int:
    """The mode `open()` would give a new file (`base=0o777`: a new folder) under the user's umask.

    mkstemp and mkdtemp make their files 0600 and folders 0700 whatever the umask, so a file
    written through them and renamed into place would be private: a teammate on a shared
    machine could not read the run's metrics or load its mask. Everything written atomically
    gets this mode instead, as Hydra's own files do.
    """
    umask = os.umask(0o022)  # there is no getter: set any value, then put the real one back
    os.umask(umask)
    return base & ~umask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Have `write` fill a temporary file beside `path`, then fsync it and rename it into place, so
    `path` holds either its old content or the whole new one, whatever stops the process. `write`
    gets a path, not a handle: `torch.save` given a path writes from C++ without holding the GIL,
    which matters on the checkpoint writer's thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a read-only folder: name the file meant, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        try:
            os.fchmod(fd, default_mode())
            write(Path(tmp))
            os.fsync(fd)  # the file's data, whichever handle wrote it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        full = out_of_space(exc, path.parent, path)
        Path(tmp).unlink(missing_ok=True)
        if full is not None:
            raise full from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def nearest_existing(folder: Path) -> Path:
    """The folder itself where it exists, else the nearest folder on its path that does (where
    creating it would start)."""
    ancestor = folder.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    return ancestor


PROBE_BYTES = 64 << 10  # what a write probe writes: more than Hydra's first files (config, overrides, settings) take


def write_refused(folder: Path) -> OSError | None:
    """Why files cannot be written in `folder` (created if missing), found by really creating a
    probe folder in its nearest existing folder, and writing a small file in it, both removed at
    once: permission bits do not bind root, a read-only mount binds everyone, and a disk that is
    full (or a quota spent) still makes folders but refuses the bytes. None where they can."""
    try:
        probe = tempfile.mkdtemp(prefix=".prune-cli-probe-", dir=nearest_existing(folder))
    except OSError as exc:
        return exc
    try:
        descriptor = os.open(os.path.join(probe, "probe"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if os.write(descriptor, bytes(PROBE_BYTES)) < PROBE_BYTES:  # a short write: the disk had less room than that
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        finally:
            os.close(descriptor)
    except OSError as exc:
        return exc
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return None


def require_writable(folder: Path, fix: str = "give --out a folder you can write to") -> None:
    """Refuse, before any work, an output folder (created if missing) that files cannot be
    written in: runs kept on a read-only disk, say."""
    refused = write_refused(folder)
    if refused is not None:
        where = nearest_existing(folder)
        raise UserError(f"cannot write to {folder}{'' if where == folder.absolute() else f' ({where} is where it would be made)'}: "
                        f"{refused.strerror}; {fix}")


FULL_BELOW = 1 << 20  # bytes free on a disk that a write has just failed on, below which it failed for want of space


def out_of_space(exc: BaseException, folder: Path, meant: Path) -> OSError | None:
    """The OSError to raise in place of `exc` where it ended a write into `folder` for want of
    space, naming `meant` (the file or folder the user asked for, not the temporary one written
    first); else None. Libraries that write from native code report a full disk in their own
    words: `torch.save` as a RuntimeError about its zip file ("unexpected pos"), safetensors as a
    SafetensorError ("I/O error ... os error 28"). So any error but an OSError of another kind is
    taken for ENOSPC where the disk is then (all but) full; the original stays chained to it."""
    if isinstance(exc, OSError):
        code = exc.errno if exc.errno in NO_SPACE else None
    elif isinstance(exc, Exception):
        try:
            code = errno.ENOSPC if shutil.disk_usage(folder).free < FULL_BELOW else None
        except OSError:
            code = None
    else:  # Ctrl-C, a stop: never a disk's doing
        code = None
    return OSError(code, os.strerror(code), str(meant)) if code is not None else None


def atomic_write_bytes(path: Path, payload: bytes | memoryview) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(payload))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


class LiveHistory:
    """history.jsonl while a run trains: each step's record appended as one line and flushed, so
    that a run of hours can be followed as it goes (`analyze curve` on it, `tail -f`), where the
    file used to appear only at the run's end. The finished run writes the whole file again
    atomically (`write_jsonl`) and records its digest in metrics.json; until then the last line may
    be one still being written, which `load_history` leaves out of a run without metrics.json.

    On resume the records the checkpoint holds are written first (atomically), then appended to:
    the steps a killed run took after its last checkpoint are taken again and listed once. The file
    is made at the first step, so a run refused before it learns anything leaves none behind
    (`discard_unstarted`)."""

    def __init__(self, run_dir: Path, records: Sequence[dict]):
        self.path = run_dir / HISTORY
        self._handle: io.TextIOWrapper | None = None
        if records:
            write_jsonl(self.path, records)
        else:
            self.path.unlink(missing_ok=True)

    def append(self, record: Mapping[str, Any]) -> None:
        if self._handle is None:
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()  # to the system, not to the disk: a line a reader sees now; the end writes it durably

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The text of a CSV file prune-cli writes (report.csv, the analyses' CSVs), from the standard
    library's writer, so that a label or path holding a comma or a quote stays one quoted field."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def results_in(run_dir: Path) -> list[str]:
    """The result files a run directory already holds (none for a new or a stopped run)."""
    return [name for name in RESULT_FILES if (run_dir / name).exists()]


def holds_a_run(run_dir: Path) -> bool:
    """Whether a run directory holds a run's work: results, or a stopped run's checkpoint."""
    return bool(results_in(run_dir)) or (run_dir / CHECKPOINT).exists()


FINISHED, STOPPED, ANOTHER_RUN = "finished", "stopped", "another run"  # `earlier_attempt`'s answers


def earlier_attempt(run_dir: Path, cfg: DictConfig) -> str | None:
    """What a sweep job's folder holds from before (a continued sweep): None (no run's work: the job
    runs afresh), FINISHED (this job's results), STOPPED (this job's checkpoint: it resumes), or
    ANOTHER_RUN (a run of other settings, beside which the job must not write). The one reading of
    it, for the continued sweep and for its plan (`adapt --resume SWEEP --dry-run`)."""
    if not holds_a_run(run_dir):
        return None
    if not same_config(run_dir, cfg):
        return ANOTHER_RUN
    return FINISHED if (run_dir / METRICS).exists() else STOPPED


def config_subdir(run_dir: Path, claimed_by_another: bool = False) -> str | None:
    """Where Hydra saves a job's config in its run directory: `.hydra`, or nowhere (None) where
    the directory already holds a run (`holds_a_run`), whose config must stay beside its results
    or checkpoint, or is another sweep job's (`claim_job_folder`: a `hydra.sweep.subdir` that
    leaves out what tells two jobs apart; the second then fails without writing there), or is held
    by another process (`folder_lock`: a run still going, which the job then leaves alone)."""
    if claimed_by_another or holds_a_run(run_dir) or folder_lock.held_elsewhere(run_dir):
        return None
    return str(HYDRA_DIR)


def run_in_use(run_dir: Path) -> str:
    """Why a run directory another process holds (`folder_lock`) cannot be run or resumed now."""
    return (f"run directory {run_dir} is in use: another prune-cli process is running it (the run itself, or a --resume of it); "
            f"let it finish, or stop it (Ctrl-C leaves a checkpoint) and then `prune-cli adapt --resume {run_dir}`")


def sweep_in_use(sweep_dir: Path) -> str:
    """Why a sweep folder another process holds (`folder_lock`) cannot be continued now."""
    return (f"sweep folder {sweep_dir} is in use: another prune-cli process is running that sweep; let it finish, or stop it "
            f"(Ctrl-C leaves its running jobs with a checkpoint) and then `prune-cli adapt --resume {sweep_dir}`")


def ensure_fresh(run_dir: Path) -> None:
    """Refuse to write into a directory that already holds a run's results or a stopped run, or
    that another process is running a run in (whose checkpoint is no stopped run's)."""
    if folder_lock.held_elsewhere(run_dir):
        raise folder_lock.FolderInUse(run_in_use(run_dir))
    existing = [name for name in results_in(run_dir) if name != HISTORY]  # a history alone is a stopped run's (`LiveHistory`)
    if existing:
        raise UserError(f"run directory {run_dir} already holds results ({', '.join(existing)}); never overwriting it")
    if (run_dir / CHECKPOINT).exists() or (run_dir / HISTORY).exists():
        raise UserError(f"run directory {run_dir} holds a stopped run; never overwriting it: it holds {resume_hint(run_dir)}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror}; choose another output folder") from None
    refused = write_refused(run_dir)
    if refused is not None:
        raise UserError(f"cannot write to run directory {run_dir}: {refused.strerror}; choose another output folder")


def holds_only_its_start(run_dir: Path) -> bool:
    """Whether a run directory holds nothing but what Hydra writes as a run starts (.hydra/, run.log):
    no checkpoint, mask or history, nothing a run made. A missing one holds nothing either."""
    return not run_dir.is_dir() or {entry.name for entry in run_dir.iterdir()} <= {HYDRA_DIR.name, LOG}


def discard_unstarted(run_dir: Path, existed: Path) -> bool:
    """Remove the run directory of a run refused before it learnt anything (its data missing or
    malformed, a model that is no BERT), so that a mistyped command leaves no empty run in
    outputs/ for `report` to list as incomplete; the error itself was shown. Only a directory
    holding nothing but what Hydra writes as a run starts (.hydra/, run.log) goes, with the
    folders above it that are then empty, up to `existed`, the nearest folder that existed
    before the command: nothing the command did not create is removed. Returns whether it went.
    """
    run_dir, existed = run_dir.absolute(), existed.absolute()
    if existed not in run_dir.parents or not run_dir.is_dir():
        return False  # a folder the user named and that was there before: leave it as it is
    if not holds_only_its_start(run_dir):
        return False  # a checkpoint, a mask, a history: something a run made, kept
    shutil.rmtree(run_dir / HYDRA_DIR, ignore_errors=True)
    (run_dir / LOG).unlink(missing_ok=True)
    folder = run_dir
    while folder != existed:
        try:
            folder.rmdir()  # only ever an empty folder
        except OSError:
            break
        folder = folder.parent
    return True


def _claim(path: Path, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Claim `path` with `payload`: None when the claim is made now, else the claim already
    there ({} while it is still being written). An exclusive create, so jobs of a parallel
    launcher (joblib, SLURM on a shared disk) agree on one winner without talking."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, default_mode())
    except FileExistsError:
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return {}
    with os.fdopen(descriptor, "w") as claim:
        json.dump(payload, claim)
    return None


def claim_sweep_run(sweep_dir: Path, key: str, run_dir: Path, job_num: int) -> Path | None:
    """Claim the run `key` for sweep job `job_num` in `run_dir`; returns None when the claim is
    this job's (made now, or before the sweep was stopped), or the run dir of the job that
    claimed it first (the claim itself while it is being written). Told apart by job, not by
    folder: two jobs a subdir sends to one folder are still two jobs."""
    path = sweep_dir / SWEEP_CLAIMS / f"{key}.json"
    held = _claim(path, {"run_dir": str(run_dir), "job": job_num})
    if held is None:
        return None
    if "run_dir" not in held:
        return path
    ours = held["job"] == job_num if "job" in held else Path(held["run_dir"]) == run_dir  # a claim from before jobs were recorded
    return None if ours else Path(held["run_dir"])


def claim_job_folder(sweep_dir: Path, run_dir: Path, job_num: int) -> str | None:
    """Claim `run_dir` for sweep job `job_num`; returns None when it is this job's, else which job
    has it. Claimed as the job starts, before Hydra writes the job's config (the `config_subdir`
    resolver), so that of two jobs a subdir sends to one folder, running at once under a parallel
    launcher, the second neither rewrites the first's config nor writes results beside its own."""
    key = hashlib.sha256(str(run_dir.absolute()).encode()).hexdigest()[:16]
    held = _claim(sweep_dir / SWEEP_FOLDERS / f"{key}.json", {"run_dir": str(run_dir), "job": job_num})
    if held is None or held.get("job") == job_num:
        return None
    return f"sweep job {held['job']}" if "job" in held else "another sweep job"


def job_folders(sweep_dir: Path) -> dict[int, Path]:
    """{job number: its folder} for every job of a sweep that has started (`claim_job_folder`'s
    records), so a continued sweep's plan (`adapt --resume SWEEP --dry-run`) finds each job's run.
    A sweep made before jobs claimed their folders has no records: there each run's job number is
    read from the Hydra settings it saved."""
    folders: dict[int, Path] = {}
    for record in sorted((sweep_dir / SWEEP_FOLDERS).glob("*.json")):
        try:
            held = json.loads(record.read_text())
            folders.setdefault(int(held["job"]), Path(held["run_dir"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a claim still being written: that job's own line says what became of it
    if not (sweep_dir / SWEEP_FOLDERS).is_dir():
        for run in runs_in(sweep_dir):
            try:
                folders.setdefault(int(OmegaConf.load(run / HYDRA_SETTINGS).hydra.job.num), run)
            except Exception:  # noqa: BLE001 - no settings, or not Hydra's: that run's job is not known
                continue
    return folders


def sweep_run_claimant(sweep_dir: Path, key: str) -> int | None:
    """The job that claimed the dense reference `key` in a sweep (`claim_sweep_run`), if one has."""
    try:
        return int(json.loads((sweep_dir / SWEEP_CLAIMS / f"{key}.json").read_text())["job"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def folder_clash_record(sweep_dir: Path, job_num: int) -> Path:
    return sweep_dir / SWEEP_FOLDER_CLASHES / f"job{job_num}.json"


ANOTHER_JOBS = "its folder holds another job's run"  # why a job did not run in its folder (`record_folder_clash`)
IN_USE = "its folder is in use by another process"


def record_folder_clash(sweep_dir: Path, job_num: int, run_dir: Path, reason: str, why: str = ANOTHER_JOBS) -> tuple[str, str]:
    """Record why sweep job `job_num` did not run in `run_dir`, another job's folder (or one another
    process holds: `why`); returns the job's entry in the sweep's list of failures (`folder_clashes`).
    A later attempt of the job removes it (`hydra_entry`)."""
    record = folder_clash_record(sweep_dir, job_num)
    write_json(record, {"run_dir": str(run_dir), "job": job_num, "error": reason, "why": why})
    return _clash_entry(str(run_dir), job_num, record, why)


def folder_clashes(sweep_dir: Path) -> dict[str, str]:
    """The sweep's jobs that found their folder holding another job's run, or held by another
    process: `<run dir>, job N` -> why, and where their error is."""
    clashes = {}
    for record in sorted((sweep_dir / SWEEP_FOLDER_CLASHES).glob("job*.json")):
        try:
            recorded = json.loads(record.read_text())
            label, where = _clash_entry(recorded["run_dir"], int(recorded["job"]), record, str(recorded.get("why", ANOTHER_JOBS)))
        except (OSError, ValueError, KeyError):
            continue  # still being written by a job that has not finished failing: its own line says so
        clashes[label] = where
    return clashes


def _clash_entry(run_dir: str, job_num: int, record: Path, why: str) -> tuple[str, str]:
    return f"{run_dir}, job {job_num}", f"{why}; error in {record}"


def override_key(override: str) -> str:
    """`head.pooling` for `head.pooling=mean`, `+head.pooling=mean` or `~head.pooling`."""
    return override.split("=", 1)[0].lstrip("+~")


def is_sweep_dir(folder: Path) -> bool:
    return (folder / SWEEP_RECORD).is_file()


class SweepRecord(NamedTuple):
    """A sweep's command as Hydra recorded it in its folder (`load_sweep`)."""

    overrides: list[str]  # its overrides
    hydra_overrides: list[str]  # its Hydra overrides, less those a continuation sets afresh (SWEEP_OWN_OVERRIDES)
    launched: Path | None  # the folder it was launched from, where it is still there
    grid: dict  # what its jobs and their folders were made from (`sweep_grid`)
    config_path: str | None  # the user's config folders it was launched with ($PRUNE_CLI_CONFIG_PATH), as the search path held them


def load_sweep(sweep_dir: Path) -> SweepRecord:
    """A sweep's command as Hydra recorded it (`multirun.yaml`)."""
    try:
        hydra = OmegaConf.load(sweep_dir / SWEEP_RECORD).hydra
        recorded = OmegaConf.to_container(hydra.overrides, resolve=False)  # as typed: `subdir=seed${seed}` stays so
        task, own = [str(o) for o in recorded["task"]], [str(o) for o in recorded["hydra"]]
        launched = Path(str(hydra.runtime.cwd))
        grid = sweep_grid(hydra)
    except Exception as exc:  # noqa: BLE001 - any unreadable record is the same one-line error
        raise UserError(f"{sweep_dir / SWEEP_RECORD} cannot be read as a Hydra sweep record: {yaml_problem(exc)}") from None
    kept = [o for o in own if override_key(o) not in SWEEP_OWN_OVERRIDES]
    searchpath = next((o.split("=", 1)[1] for o in own if override_key(o) == "hydra.searchpath"), None)
    return SweepRecord(task, kept, launched if launched.is_dir() else None, grid, searchpath)


def sweep_grid(settings: DictConfig) -> dict:
    """What a sweep's jobs, their numbers and their folders are made from besides its command
    line, as written: an experiment's grid (`hydra.sweeper.params`) and the job folders' pattern
    (`hydra.sweep.subdir`). From Hydra's settings for a launch, or from a sweep's record."""
    return {"hydra.sweeper.params": OmegaConf.to_container(settings.sweeper, resolve=False).get("params") or {},
            "hydra.sweep.subdir": OmegaConf.to_container(settings.sweep, resolve=False).get("subdir")}


def same_config(run_dir: Path, cfg: DictConfig) -> bool:
    """Whether a run directory's stored config is `cfg`, as Hydra saved it (paths as typed)."""
    try:
        stored = OmegaConf.load(run_dir / CONFIG)
    except Exception:  # noqa: BLE001 - an unreadable config is not this config
        return False
    return OmegaConf.to_container(stored, resolve=False) == OmegaConf.to_container(cfg, resolve=False)


def scored_with(algorithm: str) -> tuple[str, ...]:
    """The files beside its head that a finished run of `algorithm` is scored with: a pruning
    method's mask, dense fine-tuning's trained weights, nothing for feature extraction (the
    pretrained weights as they are). The method registry's DENSE says which algorithms have no mask."""
    from prune_cli.methods import DENSE  # here, not at the top: the methods import this module

    if algorithm not in DENSE:
        return (MASK,)
    return (ENCODER,) if algorithm == "finetune" else ()


def require_each_once(run_dirs: Sequence[Path]) -> None:
    """Refuse a run given twice (under two spellings too: base, ./base) to a command that takes
    several: it was scored twice by evaluate, loaded twice as two tasks by apply, and said to
    collide with itself by predict, where it is only a slip in the command line."""
    first_given: dict[Path, Path] = {}
    for run_dir in run_dirs:
        same = first_given.setdefault(run_dir.resolve(), run_dir)
        if same is not run_dir:
            raise UserError(f"{run_dir} is given twice{'' if str(same) == str(run_dir) else f' (also as {same})'}; give each run once")


# `key=value`, `+key=value`, `++key=value`: how Hydra overrides look, given where a run folder is wanted
LOOKS_LIKE_OVERRIDE = re.compile(r"^\+{0,2}[A-Za-z_][\w.]*=")
RESUME_TAKES = "--resume takes the run directory of a killed run, or a sweep's folder"
READERS_TAKE_NO_OVERRIDES = ("only `prune-cli adapt` takes those: this command reads each run's settings from its folder "
                             "(its --help lists the options it takes, such as --data-dir or --model)")


def not_a_directory(path: Path, advice: str = "", override_advice: str = READERS_TAKE_NO_OVERRIDES) -> UserError:
    """`path is not a directory`, with `advice`; or, for a path that does not exist and reads as a
    config override (`trainer.device=cpu`), `override_advice`. `adapt` takes overrides, so users
    give them to the commands that read finished runs too, which take only run folders (and read
    the settings from them) and options of their own (--data-dir, --model, --device, ...)."""
    if not path.exists() and LOOKS_LIKE_OVERRIDE.match(str(path)):
        return UserError(f"{path} is not a directory: it reads as a config override; {override_advice}")
    return UserError(f"{path} is not a directory ({_what_is_there(path)}){advice}")


def run_holding(path: Path) -> Path | None:
    """The run directory a file is in (its mask, or masks/round01-...), up to three folders up; None if none."""
    return next((folder for folder in list(path.parents)[:3] if (folder / CONFIG).is_file()), None)


def _what_is_there(path: Path) -> str:
    """What a path given for a folder is: nothing (a typo), or a file, such as a run's
    mask.safetensors given for its run (the folder it is in is named, where it holds a run)."""
    if not path.exists():
        return "nothing is there"
    run = run_holding(path)
    if run is not None:
        return f"a file of the run directory {run}, which is what to give"
    return "a file" if path.is_file() else "neither a file nor a folder"


def require_run_dir(run_dir: Path) -> None:
    """A complete run dir has its config, head and metrics; say what is missing. (The files its
    method is scored with are checked once its config is read: `require_scored_with`.)"""
    if not run_dir.is_dir():
        raise not_a_directory(run_dir)
    if (run_dir / CONFIG).is_file() and not (run_dir / METRICS).exists():
        state = unfinished_state(run_dir)
        going_on = state.startswith(RUNNING_NOW)  # not now rather than not right: FolderInUse's exit code
        raise (folder_lock.FolderInUse if going_on else UserError)(f"{run_dir} is a run that has not finished (no {METRICS}): {state}")
    needed = [CONFIG, Path(HEAD), Path(METRICS)]
    missing = [str(n) for n in needed if not (run_dir / n).is_file()]
    if missing:
        raise UserError(f"{run_dir} is not a complete prune-cli run directory (missing {', '.join(missing)}){runs_below_hint(run_dir)}")


def require_scored_with(run_dir: Path, algorithm: str) -> None:
    """A finished run of `algorithm` holds the files it is scored with (`scored_with`), and none
    that another kind of run writes. Without that check a pruning run whose mask was deleted would
    be scored, exported and served as the dense model, and a fine-tuned one as the pretrained
    weights, each under the run's name and without a word."""
    expected = scored_with(algorithm)
    for name in (MASK, ENCODER):
        if name in expected and not (run_dir / name).is_file():
            raise UserError(f"{run_dir} is a finished run of {algorithm}, but its {name} is missing; it cannot be scored without it")
        if name not in expected and (run_dir / name).exists():
            raise UserError(f"{run_dir} holds {name}, which no run of {algorithm} writes; "
                            "it would be scored with that file of another run: remove it")


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read in 1 MiB blocks (a fine-tuned BERT-base's weights are 440 MB; Python
    3.10, which prune-cli supports, has no hashlib.file_digest)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def written_digests(run_dir: Path) -> dict[str, str]:
    """The SHA-256 of each of `DIGESTED` the run wrote, and of each earlier mask (imp's rounds, which
    the analyses and transfer read as files), for its metrics.json (written after them)."""
    earlier = sorted((run_dir / EARLIER_MASKS).glob("*.safetensors"))
    named = [*(name for name in DIGESTED if (run_dir / name).is_file()), *(path.relative_to(run_dir).as_posix() for path in earlier)]
    return {name: file_sha256(run_dir / name) for name in named}


def require_as_written(run_dir: Path, names: Sequence[str] = MODEL_FILES) -> None:
    """A finished run's mask, trained weights and head (those of `names` its metrics.json has a
    digest for) are the files the run wrote (`written_digests`). Why: every one of them loads as
    long as its shapes fit, so another run's head copied in, a mask from another seed, or a file
    half-synced from elsewhere was scored, exported and served under this run's name and record;
    only `evaluate`'s "same" column could show it. Checked once per command, before any model
    loads: by `runner.stored_config` for every reader that puts a run back together, by
    `require_mask` for those that read its mask alone, and by `load_history` for its history (a
    curve of another run, or of a file cut short, would be read as this run's). A run written
    before the record held digests (or without metrics.json: one still going or stopped, or
    refused by its readers on their own) has nothing to compare."""
    if not (run_dir / METRICS).is_file():
        return
    recorded = load_run_record(run_dir).get(WRITTEN_DIGESTS) or {}
    for file, digest in recorded.items():
        if not is_kind(digest, TEXT):
            raise UserError(f"{run_dir / METRICS} has {digest!r} for '{file}' under '{WRITTEN_DIGESTS}', not {TEXT}; it was edited")
    for name in names:
        expected = recorded.get(name)
        if expected is None or not (run_dir / name).is_file():  # a file missing is `require_scored_with`'s to name
            continue
        now = file_sha256(run_dir / name)
        if now != expected:
            raise UserError(f"{run_dir / name} is not the file this run wrote (its SHA-256 is {now[:12]}…, where {METRICS} records "
                            f"{expected[:12]}…): it was replaced, cut short or changed after the run finished; put the run's own file back, "
                            "or run the job again")


def require_mask_or_file(given: Path, needs: str) -> Path:
    """A mask file given itself, or a run directory's mask (`require_mask`). The analyses that read
    masks alone take files too: imp writes each earlier round's mask (masks/round03-s0.4880...)
    for the rounds to be looked at, and no command read them. A run's own mask.safetensors given
    as a file is checked against the run's record, as its run directory given would be, and so is
    an earlier mask whose digest the record holds."""
    if given.is_file():
        if given.name == MASK and (given.parent / CONFIG).is_file():
            return require_mask(given.parent, needs)
        run = run_holding(given)
        # a file of a run that is no .safetensors (its config, its log): the run is what to give; a
        # .safetensors file is read, and its manifest says whether it is a mask (the head's says not)
        if run is not None and given.suffix != ".safetensors":
            raise UserError(f"{given} is no mask: it is a file of the run directory {run}; give the run, or a mask file "
                            f"({MASK}, or one of {EARLIER_MASKS}/)")
        if run is not None:  # as the run wrote it, where its record holds the file's digest (an earlier round's mask)
            require_as_written(run, (given.relative_to(run).as_posix(),))  # run is one of given's own parents
        return given
    return require_mask(given, needs)


def require_mask(run_dir: Path, needs: str) -> Path:
    """The run's mask file, as the run wrote it (`require_as_written`). A finished dense reference
    (fine-tuning, feature extraction) has none, and saying so beats pointing at runs below it; a
    folder of runs names one of them."""
    if not run_dir.is_dir():
        raise not_a_directory(run_dir)
    path = run_dir / MASK
    if path.is_file():
        require_as_written(run_dir, (MASK,))
        return path
    if (run_dir / METRICS).is_file():
        metrics = load_metrics(run_dir)
        method = metrics.get("method", "?")
        if MASK not in scored_with(str(metrics.get("algorithm", method))):
            raise UserError(f"{run_dir} is a run of {method}, a dense reference with no mask; {needs} needs a pruning run")
        raise UserError(f"{run_dir} is a finished {method} run, but its {MASK} is missing")
    raise UserError(f"{run_dir} has no {MASK}: it is not a finished run directory{runs_below_hint(run_dir)}")


def runs_in(folder: Path) -> list[Path]:
    """Every run directory below `folder`, finished or not: the folders Hydra wrote a config into."""
    return sorted(config.parent.parent for config in folder.rglob(str(CONFIG)))


def runs_below_hint(folder: Path) -> str:
    """A hint for a folder given where a run was wanted (outputs/, a sweep): the runs it holds."""
    runs = [run for run in runs_in(folder) if (run / METRICS).is_file()]
    if not runs:
        return ""
    return f"; it holds {len(runs)} finished run{'s' if len(runs) > 1 else ''} below it, e.g. {runs[0]}: pass a run directory itself"


def require_resumable(run_dir: Path) -> None:
    """A run dir that `--resume` can continue: it has its config and no final metrics yet."""
    if not run_dir.is_dir():
        raise not_a_directory(run_dir, f"; {RESUME_TAKES}", f"{RESUME_TAKES}, and continues it with the config stored there")
    if not (run_dir / CONFIG).is_file():
        raise UserError(f"{run_dir} is not a prune-cli run directory (missing {CONFIG}) nor a sweep's folder (no {SWEEP_RECORD})"
                        f"{resumable_hint(run_dir)}")
    if (run_dir / METRICS).exists():
        raise UserError(f"{run_dir} already finished ({METRICS} is there); nothing to resume")
    refused = write_refused(run_dir)
    if refused is not None:
        raise UserError(f"cannot write to run directory {run_dir} ({refused.strerror}); resuming needs to write its results there")


def resumable_hint(folder: Path) -> str:
    """For a folder given to --resume that is neither a run nor a sweep: the sweep it is inside,
    or the sweeps and unfinished runs below it."""
    around = next((parent for parent in folder.absolute().parents if is_sweep_dir(parent)), None)
    if around is not None:
        return f"; it is inside the sweep {around}: `prune-cli adapt --resume {around}` continues that sweep"
    sweeps = sorted(record.parent for record in folder.rglob(SWEEP_RECORD))
    unfinished = [run for run in runs_in(folder) if not (run / METRICS).exists()]
    found = ([f"{len(sweeps)} sweep folder(s), e.g. {sweeps[0]}"] if sweeps else []) + \
            ([f"{len(unfinished)} unfinished run(s), e.g. {unfinished[0]}"] if unfinished else [])
    return f"; it holds {' and '.join(found)}: pass one of those" if found else "; nothing to resume"


RUNNING_NOW = "another process is running it now (wait for it to finish)"  # how `unfinished_state` of a run held elsewhere begins


GOING_ON, FAILED_JOB, STOPPED = "going on", "failed", "stopped"  # `unfinished_kind`'s answers


def unfinished_kind(run_dir: Path) -> str:
    """Which way a run without its metrics.json stands: GOING_ON in another process (`folder_lock`),
    FAILED_JOB (a sweep job's failed.json) or STOPPED. The one reading of it, for the line of
    `unfinished_state` and the label `analyze curve` gives such a run."""
    if folder_lock.held_elsewhere(run_dir):
        return GOING_ON
    return FAILED_JOB if (run_dir / FAILED).is_file() else STOPPED


def unfinished_state(run_dir: Path) -> str:
    """Where a run without its metrics.json stands (`unfinished_kind`), for `report`'s list and the
    commands that need a finished run, with how far it got (`last_step`: beside a checkpoint's step,
    what a resume takes again) and what to do."""
    reached = last_step(run_dir)
    kind = unfinished_kind(run_dir)
    if kind == GOING_ON:
        return RUNNING_NOW + (f"; it has done step {reached}" if reached else "")
    after = f" after step {reached}" if reached else ""
    if kind == FAILED_JOB:
        return f"it failed{after} (its {FAILED} says why); it holds {resume_hint(run_dir)}"
    return f"stopped or killed{after}; it holds {resume_hint(run_dir)}"


def last_step(run_dir: Path) -> str | None:
    """The last step an unfinished run took, from the last whole line of its history.jsonl ("5 of 8
    in phase 'prune'"), or None where it has taken none (or the file is not prune-cli's). Reads the
    file's end only: a run of many thousand steps has megabytes of history."""
    try:
        with (run_dir / HISTORY).open("rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, end - (64 << 10)))
            whole_lines = handle.read().split(b"\n")[:-1]  # the piece after the last newline is being written
        record = json.loads(whole_lines[-1]) if whole_lines else None
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not is_kind(record.get("step"), WHOLE) or not is_kind(record.get("phase"), TEXT):
        return None
    total = record.get("total")
    return f"{record['step']}" + (f" of {total}" if is_kind(total, WHOLE) else "") + f" in phase {record['phase']!r}"


def resume_hint(run_dir: Path) -> str:
    """What an unfinished run directory holds and the command that goes on with it: the line of a
    stopped run and `report`'s list of unfinished runs say it alike."""
    where = checkpoint_reached(run_dir)
    if where is None:
        return f"no checkpoint; `prune-cli adapt --resume {run_dir}` runs it again from step 0"
    return f"a checkpoint {where}; `prune-cli adapt --resume {run_dir}` continues from there"


def checkpoint_reached(run_dir: Path) -> str | None:
    """Where a stopped run's checkpoint is ("after step 200 of phase 'prune'"), or None where it has none."""
    try:
        saved = json.loads((run_dir / CHECKPOINT_PROGRESS).read_text())
        return f"after step {int(saved['steps_done'])} of phase {saved['phase']!r}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def continued_from(run_dir: Path) -> str:
    """What `--resume` does with an unfinished run: where it goes on from."""
    where = checkpoint_reached(run_dir)
    return "runs again from step 0 (no checkpoint)" if where is None else f"resumes {where}"


def interrupted_message(run_dir: Path) -> str:
    """What to say when Ctrl-C or SIGTERM stops a run (after "interrupted: ")."""
    if (run_dir / METRICS).exists():
        return f"after the run finished; its results are complete in {run_dir}"
    return f"{run_dir} holds {resume_hint(run_dir)}"


def stopped_by_the_system_message(exc: OSError, run_dir: Path) -> str:
    """What to say when the operating system stops a run (a full disk, a folder made read-only under
    it): the problem and, where the run had begun to write, where it was left and how it goes on.
    Its last checkpoint stays whole: every file is written beside its old self, then renamed over it."""
    if holds_only_its_start(run_dir):
        return os_problem(exc)
    return f"{os_problem(exc)}; the run stopped: {run_dir} holds {resume_hint(run_dir)}"


def load_config(run_dir: Path) -> DictConfig:
    """The run's stored config, its relative paths anchored where the run was launched."""
    try:
        cfg = OmegaConf.load(run_dir / CONFIG)
    except Exception as exc:  # noqa: BLE001 - not YAML, not UTF-8, unreadable, or OmegaConf's own grammar
        raise UserError(f"{run_dir / CONFIG} cannot be read: {yaml_problem(exc)}") from None
    if not isinstance(cfg, DictConfig):
        raise UserError(f"{run_dir / CONFIG} holds a YAML list, not a run's config; it was edited or overwritten")
    settle_hydra_interpolations(cfg, run_dir)
    anchor_relative_paths(cfg, run_dir)
    return cfg


HYDRA_INTERPOLATION = re.compile(r"\$\{hydra:([^${}]+)\}")


def settle_hydra_interpolations(cfg: DictConfig, run_dir: Path) -> None:
    """Replace each `${hydra:...}` in a stored config by the value it had in the run, from the run's
    `.hydra/hydra.yaml`.

    Hydra stores a run's config as composed, interpolations and all, and `${hydra:...}` (Hydra's own
    way to name the launch folder, as in `data.dir=${hydra:runtime.cwd}/glue`) resolves only inside
    the Hydra app that ran it: every later reader (evaluate, predict, export, report) would fail on
    it. hydra.yaml records what it resolved to (runtime.cwd, job.name, runtime.choices, ...). A
    value it does not record is left as it is, to be named by whatever reads it."""
    found = [(key, value) for key, value in _string_leaves(OmegaConf.to_container(cfg, resolve=False)) if "${hydra:" in value]
    if not found:
        return
    record = recorded_hydra_settings(run_dir)
    if record is None:  # no hydra.yaml, or not one Hydra wrote: nothing to settle them with
        return
    settings = record.hydra

    def recorded(match: re.Match) -> Any:
        value = OmegaConf.select(settings, match.group(1).strip(), default=None, throw_on_resolution_failure=False)
        return match.group(0) if value is None or OmegaConf.is_config(value) else value  # a section of Hydra's is no value

    for key, value in found:
        whole = HYDRA_INTERPOLATION.fullmatch(value)
        settled = recorded(whole) if whole else HYDRA_INTERPOLATION.sub(lambda match: str(recorded(match)), value)
        OmegaConf.update(cfg, key, settled, merge=False)


def _string_leaves(tree: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    """(dotted key, value) of every string in a config's nested mappings (lists are left alone)."""
    if isinstance(tree, dict):
        for name, value in tree.items():
            yield from _string_leaves(value, f"{prefix}{name}.")
    elif isinstance(tree, str):
        yield prefix[:-1], tree


def load_complete_config(run_dir: Path) -> DictConfig:
    """The run's stored config, for rebuilding the run (evaluate, predict, apply, export, --resume):
    refused in one line unless it has every section a rebuild reads. `report` and the recipe checks
    read whatever fields a config has, through `load_config`."""
    cfg = load_config(run_dir)
    for section in CONFIG_SECTIONS:  # a rebuild reads them resolved: one that cannot be would fail there with OmegaConf's traceback
        try:
            if isinstance(cfg.get(section), DictConfig):
                OmegaConf.to_container(cfg[section], resolve=True)
        except OmegaConfBaseException as exc:
            raise UserError(f"{run_dir / CONFIG} has a value that cannot be resolved here ('{getattr(exc, 'full_key', '') or section}': "
                            f"{first_line(exc)})") from None
    missing = [section for section in CONFIG_SECTIONS if not isinstance(cfg.get(section), DictConfig)]
    if missing or not isinstance(cfg.task.get("name"), str):
        raise UserError(f"{run_dir / CONFIG} is not a complete run config (it has no {(missing or ['task.name'])[0]}); "
                        "it was edited or truncated")
    return cfg


def launch_dir(run_dir: Path) -> Path | None:
    """The folder the run was launched from (Hydra records it), or None where that is unknown."""
    cwd = OmegaConf.select(recorded_hydra_settings(run_dir) or OmegaConf.create(), "hydra.runtime.cwd", default=None,
                           throw_on_resolution_failure=False)
    return Path(str(cwd)) if isinstance(cwd, str) else None


def recorded_hydra_settings(run_dir: Path) -> DictConfig | None:
    """Hydra's settings for the run as it recorded them (`.hydra/hydra.yaml`, under `hydra`), or
    None where there is no such record (an older or hand-made folder, or a file that is not one)."""
    try:
        settings = OmegaConf.load(run_dir / HYDRA_SETTINGS)
    except Exception:  # noqa: BLE001 - missing, unreadable, or not YAML: no record
        return None
    return settings if isinstance(settings, DictConfig) and isinstance(settings.get("hydra"), DictConfig) else None


def anchor_relative_paths(cfg: DictConfig, run_dir: Path) -> None:
    """Make each relative path of `PATH_KEYS` (`data.dir=../glue`, `--model ./my-bert`, a task's
    `hub.dataset: ./reviews`) absolute, from the folder the run was launched in, where it exists there.

    Without this, `evaluate`, `export`, `apply`, `predict` and `--resume` read such a path from
    wherever they are run, and a run re-scored from another folder fails to find its model or
    data (a dataset-only task has no `--data-dir` to point elsewhere). A value that is no folder
    there (a hub name) is left as it is."""
    launched = launch_dir(run_dir)
    if launched is None:
        return
    for key in PATH_KEYS:
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)  # None too where it cannot be resolved
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # data.dir=5 names the folder "5"
            value = str(value)
        if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
            continue
        if (launched / value).exists():
            OmegaConf.update(cfg, key, str((launched / value).resolve()))


def prune_cli_version(record: Any) -> str | None:
    """The prune-cli version a run's record (metrics.json, checkpoint/progress.json) names under
    `versions`, or None where it names none (a record older than that field, or not a record)."""
    versions = record.get("versions") if isinstance(record, dict) else None
    found = versions.get("prune_cli") if isinstance(versions, dict) else None
    return str(found) if found else None


def recorded_prune_cli_version(run_dir: Path) -> str | None:
    """The prune-cli that made a run: metrics.json's record once it finished, its last checkpoint's
    progress.json while it is stopped. None where neither says: a run killed before its first
    checkpoint, or one checkpointed by a prune-cli older than 0.2.1 (progress.json had no version)."""
    for record_file in (METRICS, CHECKPOINT_PROGRESS):
        try:
            version = prune_cli_version(json.loads((run_dir / record_file).read_text()))
        except (OSError, ValueError):
            continue
        if version is not None:
            return version
    return None


def load_metrics(run_dir: Path) -> dict[str, Any]:
    """metrics.json as written, any fields: for the readers that look up one field with a fallback
    (a version, a method name for a message). Commands that read a finished run's identity and
    scores use `load_run_record`."""
    return read_json_record(run_dir / METRICS)


# The fields of metrics.json that commands read, and the kind of value each may hold. The required
# ones identify a run and its scores, and are in every record prune-cli has written; the others are
# checked where present, and a reader that cannot do without one names it (`needs`).
NUMBER, WHOLE, TEXT, OBJECT = "a number", "a whole number", "text", "a JSON object"
RECORD_FIELDS = {
    "task": (TEXT, True), "method": (TEXT, True), "algorithm": (TEXT, False), "model": (TEXT, False), "tag": (TEXT, False),
    "main_metric": (TEXT, True), "main_metric_value": (NUMBER, True), "metrics": (OBJECT, True),
    "sparsity_requested": (NUMBER, True), "sparsity_realized": (NUMBER, True), "seed": (WHOLE, False),
    "steps": (WHOLE, False), "train_examples": (WHOLE, False), "train_seconds": (NUMBER, False),
    "num_kept": (WHOLE, False), "num_maskable": (WHOLE, False), "method_details": (OBJECT, False),
    "scored_on": (OBJECT, False), "trained_on": (OBJECT, False), "versions": (OBJECT, False), "base_weights_hash_before": (TEXT, False),
    "tokenizer_hash": (TEXT, False), WRITTEN_DIGESTS: (OBJECT, False),
}


# What every record of history.jsonl holds (`load_history`); the dev figures, where present, are numbers keyed eval_*.
HISTORY_FIELDS = {"phase": TEXT, "step": WHOLE, "loss": NUMBER, "sparsity": NUMBER}
FIGURE_PREFIX = "eval_"  # how metrics.json and a step's record key a dev figure (training.metric_key)


def scored_figures(record: Mapping[str, Any]) -> dict[str, Any]:
    """The dev figures a step's record holds (those `trainer.eval_every` scored), for the log, the
    progress bar and `analyze curve` alike; none for a step that was not scored."""
    return {key: value for key, value in record.items() if key.startswith(FIGURE_PREFIX)}


def is_kind(value: object, kind: str) -> bool:
    """Whether a JSON value is of one of RECORD_FIELDS' kinds."""
    if isinstance(value, bool):  # JSON's true/false are no numbers to a reader of a score
        return False
    return isinstance(value, {NUMBER: (int, float), WHOLE: int, TEXT: str, OBJECT: dict}[kind])


def load_run_record(run_dir: Path, needs: Sequence[str] = ()) -> dict[str, Any]:
    """A finished run's metrics.json, with every field of RECORD_FIELDS present where required (or
    in `needs`) and of its kind wherever present, and every score a number. A record edited by hand
    (a field deleted, a number written as text) is a one-line error naming what is wrong, where
    reading the field would be a traceback: in `analyze sensitivity`, after minutes of training."""
    assert set(needs) <= RECORD_FIELDS.keys(), f"needs names a field RECORD_FIELDS does not describe: {needs}"
    path = run_dir / METRICS
    record = read_json_record(path)
    for name, (kind, required) in RECORD_FIELDS.items():
        value = record.get(name)
        if value is None and not required and name not in needs:
            continue
        if name not in record:
            raise UserError(f"{path} has no '{name}'; it was edited or truncated")
        if not is_kind(value, kind):
            raise UserError(f"{path} has '{name}': {value!r}, not {kind}; it was edited")
    for key, value in record["metrics"].items():
        if not is_kind(value, NUMBER):
            raise UserError(f"{path} has '{key}': {value!r} under 'metrics', not {NUMBER}; it was edited")
    return record


def load_history(run_dir: Path) -> list[dict[str, Any]]:
    """A run's history.jsonl: one record per optimiser step (phase, step, loss, sparsity, and the dev
    figures where `trainer.eval_every` scored them). A finished run's is the file it wrote, by its
    digest (`require_as_written`). A run without metrics.json (going on now, or stopped) has the
    steps it has taken so far (`LiveHistory`): none before its first, and not the last line while
    that is still being written. A line that is no such record (the file edited or cut short) is a
    one-line error naming the file and the line."""
    path = run_dir / HISTORY
    finished = (run_dir / METRICS).is_file()
    if finished:
        require_as_written(run_dir, (HISTORY,))
    elif not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 text
        raise UserError(f"{path} cannot be read: {first_line(exc)}") from None
    lines = text.splitlines()
    if not finished and not text.endswith("\n"):
        lines = lines[:-1]  # the line being appended as this was read
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{path}, line {number}, is not JSON ({first_line(exc)}); it was edited or cut short") from None
        if not isinstance(record, dict) or not all(is_kind(record.get(key), kind) for key, kind in HISTORY_FIELDS.items()):
            raise UserError(f"{path}, line {number}, is not a step's record (an object with "
                            f"{', '.join(f'{key} ({kind})' for key, kind in HISTORY_FIELDS.items())}); it was edited")
        odd = next((key for key, value in scored_figures(record).items() if not is_kind(value, NUMBER)), None)
        if odd is not None:
            raise UserError(f"{path}, line {number}, has '{odd}': {record[odd]!r}, not {NUMBER}; it was edited")
        records.append(record)
    return records


def read_json_record(path: Path) -> dict[str, Any]:
    """A JSON record prune-cli wrote (metrics.json, failed.json): an object, whose fields every reader
    then looks up. A file that is not one (edited by hand, overwritten by another tool) is a one-line
    error that names it, where reading its fields would be a traceback."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
        raise UserError(f"{path} cannot be read: {first_line(exc)}") from None
    if not isinstance(record, dict):
        raise UserError(f"{path} holds a JSON {type(record).__name__}, not a prune-cli record (a JSON object); "
                        "it was edited or overwritten")
    return record
