"""`python -m liverl.train [group=option ...] [knob=value ...] [verl.<verl key>=value ...]`

compose (LiveRL's conf/) -> build (verl's own config from the verl that runs) -> plan (the run
directory) -> launch (dryrun | local). Exit codes: 0 ok, 1 the training failed, 2 configuration
error (nothing launched), 3 the cluster cannot host the plan (nothing launched).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig

from liverl.build import build, prewarm_verl
from liverl.config import CONF_DIR, PRIMARY, translate_hydra_error
from liverl.errors import CONFIG_ERROR_EXIT, ConfigError
from liverl.launch import run_plan
from liverl.plan import write_config_error, write_plan

_exit_codes: list[int] = []
_launched: list[str] = []  # run directories handed to a launcher that runs something


def plan_and_launch(cfg: DictConfig, run_dir: Path) -> int:
    """One job: build, write the plan, launch it. Returns the job's exit code."""
    try:
        b = build(cfg)
    except ConfigError as exc:
        write_config_error(run_dir, str(exc))
        print(exc, file=sys.stderr)
        return CONFIG_ERROR_EXIT
    plan = write_plan(b, run_dir)
    print((run_dir / "summary.txt").read_text(), end="")
    print(f"  plan        {run_dir}")
    if cfg.launcher.name == "dryrun":
        return 0
    _launched.append(str(run_dir))
    return run_plan(plan.run_dir, address=cfg.launcher.address, forward_env=tuple(cfg.launcher.forward_env))


@hydra.main(config_path=str(CONF_DIR), config_name=PRIMARY, version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    _exit_codes.append(plan_and_launch(cfg, Path(HydraConfig.get().runtime.output_dir)))


def main() -> int:
    # let composition errors reach us (instead of Hydra's exit 1) so they get LiveRL's message and exit 2
    os.environ["HYDRA_FULL_ERROR"] = "1"
    prewarm_verl()
    try:
        _hydra_main()
    except (ConfigCompositionException, MissingConfigException, OverrideParseException) as exc:
        print(translate_hydra_error(exc, [a for a in sys.argv[1:] if "=" in a]), file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return CONFIG_ERROR_EXIT
    if len(_exit_codes) > 1:
        failed = sum(1 for c in _exit_codes if c)
        print(f"LiveRL multirun: {len(_exit_codes)} job(s), {failed} failed; exit codes {_exit_codes}")
    return max(_exit_codes, default=0)


if __name__ == "__main__":
    code = main()
    if not _launched:
        # nothing was launched: skip the interpreter teardown of torch/ray (over a second) once output is flushed
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
