"""How long the model-based (hypothesis) tests search: their settings, in one place.

The subscription and thread-root state machines, the moderation machine and the forest
order-independence properties read their settings here, each with its own number of examples:

- profile "models" (`make test`, CI): that number, of new sequences each run (derandomize off:
  hypothesis's own CI profile would run the same ones every time), a failure printed with its
  steps and its `@reproduce_failure` blob and kept in the local example database;
- profile "models-soak" (`make soak` sets SOAK=1): ten times as many examples, longer sequences;
- LISTGATE_MODEL_EXAMPLES=n: n examples (a long search by hand, or a quick one while editing).

The profiles are registered, not loaded: the other hypothesis tests keep their own settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import settings as Settings

from tests.support.reliability import soak

SOAK_EXAMPLES = 10  # times the default number of examples under `make soak`
SOAK_STEPS = 2  # times the default number of steps of a state machine under `make soak`
# seconds a model test may take (pytest-timeout): its search, then up to the 5 minutes hypothesis
# gives itself to shrink a failure (a timeout in between hides the failing case); x20 under soak
TIMEOUT = 1200 * (SOAK_EXAMPLES * SOAK_STEPS if soak() else 1)

Settings.register_profile(
    "models",
    Settings(
        derandomize=False,
        deadline=None,
        print_blob=True,
        verbosity=Verbosity.normal,
        phases=tuple(Phase),
        report_multiple_bugs=False,
        # the examples are database work, slow by hypothesis's measure; the forest properties
        # share one database (or one server) between examples through a fixture
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    ),
)
Settings.register_profile("models-soak", Settings.get_profile("models"))


def settings_for(examples: int, steps: int | None = None) -> Settings:
    """The settings of one model test: `examples` examples (of up to `steps` steps, a state
    machine) under the "models" profile; under SOAK=1 "models-soak", 10x the examples and 2x the
    steps; LISTGATE_MODEL_EXAMPLES sets the number of examples either way."""
    heavy = soak()
    base = Settings.get_profile("models-soak" if heavy else "models")
    n = examples * SOAK_EXAMPLES if heavy else examples
    n = int(os.environ.get("LISTGATE_MODEL_EXAMPLES", n))
    if steps is None:
        return Settings(base, max_examples=n)
    return Settings(base, max_examples=n, stateful_step_count=steps * (SOAK_STEPS if heavy else 1))
