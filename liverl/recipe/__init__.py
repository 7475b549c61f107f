"""From LiveRL's config to a plan on disk: the documented environment as overrides (environ), compose `conf/`
(compose), every knob's type and range (knobs) and verl.* value types (verl_types), find the verl that runs
(verl_source), build verl's own config and judge it with the guardrails (build), write the run directory (plan),
render its human files (render)."""
