"""A small training loop that uses each SDK signal every step (a step span with a phase and
its scalars, a rollout with a generation and a reward). The dead-endpoint test runs it for
behaviour; ``bench/bench_sdk.py`` times it."""

from __future__ import annotations

import trackio_otel


def train(run: trackio_otel.Run, steps: int) -> None:
    for step in range(steps):
        with run.step(step) as s:
            with s.phase("forward"):
                pass
            s.log({"loss": 1.0 / (step + 1)})
        with run.rollout() as r:
            r.generation(model="m", output="ok")
            r.reward(1.0)
