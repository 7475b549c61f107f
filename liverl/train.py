"""`python -m liverl.train [group=option ...] [knob=value ...] [verl.<verl key>=value ...]`

compose (LiveRL's conf/) -> build (verl's own config from the verl that runs) -> plan (the run
directory) -> launch (dryrun | local | ray_job | slurm). Exit codes: 0 ok, 1 the training failed, 2 configuration
error (nothing launched), 3 the cluster cannot host the plan (nothing launched).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig

from liverl.errors import CONFIG_ERROR_EXIT, ConfigError
from liverl.launch.dispatch import LAUNCHED, plan_and_launch
from liverl.paths import CONF_DIR
from liverl.recipe.compose import PRIMARY, compose_liverl, translate_hydra_error
from liverl.recipe.environ import arguments
from liverl.rundir import RUN_JSON

_exit_codes: list[int] = []
_jobs: list[dict[str, object]] = []  # every job's state, for the multirun summary
_sweep_dir: list[Path] = []


@hydra.main(config_path=str(CONF_DIR), config_name=PRIMARY, version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    _exit_codes.append(plan_and_launch(cfg, run_dir))
    _jobs.append(job_state(run_dir, _exit_codes[-1]))
    if hc.mode == RunMode.MULTIRUN:
        _sweep_dir.append(Path(hc.sweep.dir))


def job_state(run_dir: Path, code: int) -> dict[str, object]:
    """One multirun job's line in the summary: its state and job id from run.json."""
    path = run_dir / RUN_JSON
    run = json.loads(path.read_text()) if path.is_file() else {"status": "locked"}
    job = run.get("job_id") or run.get("slurm_job_id")
    return {"run_dir": str(run_dir), "state": run.get("status"), "job_id": job, "exit": code}


def multirun_summary() -> str:
    """Every multirun job's state, one line each (also written to the sweep directory)."""
    failed = sum(1 for c in _exit_codes if c)
    lines = [f"LiveRL multirun: {len(_exit_codes)} job(s), {failed} failed; exit codes {_exit_codes}"]
    lines += [f"  {j['state']:<13} exit {j['exit']}  {j['job_id'] or '-':<36} {j['run_dir']}" for j in _jobs]
    text = "\n".join(lines) + "\n"
    if _sweep_dir:
        (_sweep_dir[0] / "multirun.txt").write_text(text)
    return text


def run(overrides: list[str], run_dir: Path, environ: Mapping[str, str] | None = None) -> int:
    """The Python API: plan (and launch) one run into run_dir as `python -m liverl.train OVERRIDES` does, with the
    documented environment read from environ (default: this process's). Returns the exit code."""
    args = arguments(overrides, os.environ if environ is None else environ)
    for note in args.notes:
        print(f"LiveRL: {note}", file=sys.stderr)
    try:
        cfg = compose_liverl(args.args, run_dir=run_dir)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return CONFIG_ERROR_EXIT
    return plan_and_launch(cfg, run_dir)


def main() -> int:
    # let composition errors reach us (instead of Hydra's exit 1) so they get LiveRL's message and exit 2
    os.environ["HYDRA_FULL_ERROR"] = "1"
    args = arguments(sys.argv[1:], os.environ)  # the documented environment, then the command line
    for note in args.notes:
        print(f"LiveRL: {note}", file=sys.stderr)
    sys.argv[1:] = args.args
    try:
        _hydra_main()
    except (ConfigCompositionException, MissingConfigException, OverrideParseException) as exc:
        print(translate_hydra_error(exc, [a for a in sys.argv[1:] if "=" in a]), file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return CONFIG_ERROR_EXIT
    if len(_exit_codes) > 1:
        print(multirun_summary(), end="")
    return max(_exit_codes, default=0)


if __name__ == "__main__":
    code = main()
    if not LAUNCHED:
        # nothing was launched: skip the interpreter teardown of torch/ray (over a second) once output is flushed
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
