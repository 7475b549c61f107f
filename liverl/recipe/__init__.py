"""From LiveRL's config to a plan on disk: compose `conf/` (compose), find the verl that runs (verl_source),
build verl's own config and judge it with the guardrails (build), write the run directory (plan), render its
human files (render)."""
