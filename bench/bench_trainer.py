"""What the Transformers integration costs a real ``Trainer``, as ratios in one run.

    python bench/bench_trainer.py [--steps 40] [--rounds 6] [--sizes tiny small base]

Random Llamas from ``examples/tiny_lm.py`` on the CPU: ``tiny`` (the tests' model, 2 layers
of 32, a few ms a step: the worst case, since the integration's cost per step is fixed),
``small`` (4 layers of 128) and ``base`` (6 of 256). Each round trains ``--steps`` steps
without and with ``run.callback()`` back to back (order alternating), and the ratio is
taken within the round, so the load of a shared machine hits both sides alike.

1. Step time: the median interval between consecutive ``on_step_begin`` events, so it
   holds everything a step costs (the integration's spans, hooks, logs; goal ≤ 1.05×), by
   three clocks (``CLOCKS``).
2. ``train()`` wall time, end-of-training flush included.
3. The callback alone: a step's events (step begin, a forward and a backward through its
   hooks, optimizer, step end, a log of four scalars) driven directly, µs per step on the
   caller's thread: the fixed cost the ratios above divide by the step.

torch runs one thread: on a shared machine with few cores, its intra-op threads wait for
whichever core another process holds (a 4 ms step became 55 ms), which swamps the
comparison.
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

import torch  # noqa: E402
from transformers import (  # noqa: E402
    DataCollatorForLanguageModeling,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

import trackio_otel  # noqa: E402
from examples import tiny_lm  # noqa: E402

SIZES = {"tiny": (32, 2), "small": (128, 4), "base": (256, 6)}


CLOCKS = {
    "wall": time.perf_counter,
    "training thread CPU": time.thread_time,
    "process CPU": time.process_time,
}
"""Wall time is what a user waits, but on a shared machine other processes' load swamps it;
the training thread's CPU time is the integration's cost on the caller's thread, and the
process's CPU time adds its export thread (the writer process is not counted)."""


class StepClock(TrainerCallback):
    """Every clock at each step start."""

    def __init__(self) -> None:
        self.starts: list[dict[str, float]] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.starts.append({name: clock() for name, clock in CLOCKS.items()})

    def medians(self, skip: int = 5) -> dict[str, float]:
        """Median step interval per clock, after ``skip`` warm-up steps."""
        pairs = list(zip(self.starts, self.starts[1:], strict=False))[skip:]
        return {c: statistics.median(b[c] - a[c] for a, b in pairs) for c in CLOCKS}


def train(
    steps: int, out: str, size: str, run: trackio_otel.Run | None
) -> tuple[dict[str, float], float]:
    """(median step interval per clock, train() wall seconds), with ``run.callback()`` if
    a run is given. One run serves every round: a finished run's processors stay on the
    process's providers (the OTel SDK cannot remove them), so a run per round would make
    each round's spans pass through all earlier rounds' processors."""
    tok = tiny_lm.tokenizer()
    data = tiny_lm.lm_dataset(tok, 256)
    clock = StepClock()
    trainer = Trainer(
        model=tiny_lm.model(tok, hidden=SIZES[size][0], layers=SIZES[size][1]),
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
    return clock.medians(), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    a = parser.parse_args()
    torch.set_num_threads(1)
    out = tempfile.mkdtemp(prefix="bench-trainer-out-")
    run = trackio_otel.init(project="bench-trainer", gpu=False)
    train(10, out, "tiny", run)  # warm-up: imports, the writer process
    for size in a.sizes:
        ratios: dict[str, list[float]] = {c: [] for c in [*CLOCKS, "train() wall"]}
        plain_ms = []
        for r in range(a.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)  # ABBA: drift cancels
            got = {on: train(a.steps, out, size, run if on else None) for on in order}
            (plain, plain_wall), (ours, our_wall) = got[False], got[True]
            plain_ms.append(plain["wall"] * 1e3)
            for c in CLOCKS:
                ratios[c].append(ours[c] / plain[c])
            ratios["train() wall"].append(our_wall / plain_wall)
        print(
            f"{size}: plain step {statistics.median(plain_ms):.2f} ms wall;"
            f" with/without run.callback(), {a.rounds} paired rounds of {a.steps} steps,"
            " median [min-max] of the rounds' ratios (goal for a step <= 1.05x)"
        )
        for c, values in ratios.items():
            label = c if c.startswith("train()") else f"step, {c}"
            print(f"  {label:28s} {_spread(values)}")

    print(f"callback alone: {callback_alone(run):.0f} us per step on the caller's thread")
    run.finish()


def callback_alone(run: trackio_otel.Run, steps: int = 2000) -> float:
    callback, state, control = run.callback(), TrainerState(), TrainerControl()
    logs = {"loss": 1.0, "grad_norm": 2.0, "learning_rate": 1e-4, "epoch": 0.1}

    def one_step() -> None:
        callback.on_step_begin(None, state, control)
        callback._forward_begins(None, None)
        callback._forward_ends(None, None, None)
        callback._gradient_ready(None)
        callback.on_pre_optimizer_step(None, state, control)
        callback.on_optimizer_step(None, state, control)
        state.global_step += 1
        callback.on_step_end(None, state, control)
        callback.on_log(None, state, control, logs=logs)

    for _ in range(200):
        one_step()
    started = time.thread_time()
    for _ in range(steps):
        one_step()
    return (time.thread_time() - started) / steps * 1e6


def _spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.3f}x [{min(ratios):.3f}-{max(ratios):.3f}]"


if __name__ == "__main__":
    main()
