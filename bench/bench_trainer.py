"""What the Transformers integration costs a real ``Trainer``, as ratios in one run.

    python bench/bench_trainer.py [--steps 60] [--rounds 3]

The tiny Llama of ``examples/tiny_lm.py`` (CPU, ~10 ms a step: the worst case, since the
integration's cost per step is fixed) trains ``--steps`` steps without and with
``run.callback()``, alternating for ``--rounds`` rounds so drift hits both alike.

1. Step time: the median interval between consecutive ``on_step_begin`` events, so it
   holds everything a step costs (the integration's spans, hooks, logs; goal ≤ 1.05×).
2. ``train()`` wall time, end-of-training flush included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="bench-trainer-")
os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)

from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    DataCollatorForLanguageModeling,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

import trackio_otel  # noqa: E402
from examples import tiny_lm  # noqa: E402


class StepClock(TrainerCallback):
    """Intervals between consecutive step starts."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.starts.append(time.perf_counter())

    def intervals(self, skip: int = 5) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)][skip:]


def train(steps: int, out: str, integrated: bool) -> tuple[list[float], float]:
    """(step intervals, train() wall seconds)."""
    tok = tiny_lm.tokenizer()
    data = Dataset.from_dict({"text": tiny_lm.sentences(256)})
    data = data.map(lambda b: tok(b["text"]), batched=True, remove_columns=["text"])
    clock = StepClock()
    run = trackio_otel.init(project="bench-trainer", gpu=False) if integrated else None
    trainer = Trainer(
        model=tiny_lm.model(tok),
        args=TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=4,
            logging_steps=1,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            disable_tqdm=True,
            log_level="error",
        ),
        train_dataset=data,
        data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
        callbacks=[clock, *([run.callback()] if run else [])],
    )
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    if run is not None:
        run.finish()
    return clock.intervals(), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    out = tempfile.mkdtemp(prefix="bench-trainer-out-")
    train(10, out, integrated=True)  # warm-up: imports, the writer process
    steps: dict[bool, list[float]] = {False: [], True: []}
    walls: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(a.rounds):
        for integrated in (False, True):
            intervals, wall = train(a.steps, out, integrated)
            steps[integrated] += intervals
            walls[integrated].append(wall)
    base, ours = statistics.median(steps[False]), statistics.median(steps[True])
    base_wall, our_wall = statistics.median(walls[False]), statistics.median(walls[True])
    print(f"Trainer step (median of {len(steps[True])}), {a.steps} steps x {a.rounds} rounds")
    print(f"  plain {base * 1e3:8.2f} ms   with run.callback() {ours * 1e3:8.2f} ms")
    print(f"  ratio {ours / base:.3f}x  (goal <= 1.05x)")
    print(f"train() wall time (median of {a.rounds})")
    print(f"  plain {base_wall:8.3f} s    with run.callback() {our_wall:8.3f} s")
    print(f"  ratio {our_wall / base_wall:.3f}x")


if __name__ == "__main__":
    main()
