"""Launching a written plan: where it runs and who holds it.

`refusal` (exit codes, LaunchRefused: a launch that does not start), `local` (this process, on Ray, through the
recipe), `ray_job` (a Ray cluster's Job Submission API), `slurm` (sbatch), `cluster` (what a Ray cluster has),
`jobs` (asking a dashboard about a job), `lock` (one live launch per run/checkpoint directory), `resume` (a new
attempt in the same run directory), `provenance` (what code and environment produced a run).
"""
