"""LiveRL: Hydra recipe layer that composes, checks, plans and launches verl runs."""
