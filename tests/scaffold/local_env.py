"""The tests select the host environment as `local_env:LocalEnvironment` (tests/scaffold on the runner's path); it
lives in liverl/scaffold/local_env.py, where the conformance gate and GPU hosts without docker use it too."""

from liverl.scaffold.local_env import LocalEnvironment

__all__ = ["LocalEnvironment"]
