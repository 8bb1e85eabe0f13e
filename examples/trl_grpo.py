"""TRL's GRPOTrainer with ``run.callback()``: metrics, step phases, and one rollout trace per
completion, with no other code.

    TRACKIO_DIR=/tmp/trackio python examples/trl_grpo.py --project grpo-trl --steps 3

The policy is a tiny random Llama built on the spot (``tiny_lm.py``), so this runs on a
CPU with no download; swap in ``AutoModelForCausalLM.from_pretrained(...)`` for a real one.
"""

from __future__ import annotations

import argparse
import tempfile

import tiny_lm
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

import trackio_otel

PROMPTS = ["what is one plus two", "what is two plus two", "what is five minus four"]


def says_yes(completions: list[str], **kwargs: object) -> list[float]:
    """1 when the answer contains "yes"."""
    return [float("yes" in c.split()) for c in completions]


def brevity(completions: list[str], **kwargs: object) -> list[float]:
    """Shorter is better."""
    return [-len(c.split()) / 8 for c in completions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="grpo-trl")
    parser.add_argument("--steps", type=int, default=3)
    a = parser.parse_args()
    tok = tiny_lm.tokenizer()
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="grpo-trl-"),
        max_steps=a.steps,
        per_device_train_batch_size=4,
        num_generations=4,  # one group of 4 completions per prompt
        max_completion_length=8,
        logging_steps=1,
        reward_weights=[1.0, 0.5],
        report_to="none",  # the callback below reports to Trackio
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    with trackio_otel.init(project=a.project, gpu=False) as run:
        trainer = GRPOTrainer(
            model=tiny_lm.model(tok),
            processing_class=tok,
            reward_funcs=[says_yes, brevity],
            args=args,
            train_dataset=Dataset.from_dict({"prompt": PROMPTS * 4}),
            callbacks=[run.callback()],
        )
        trainer.train()
    print(f"{a.steps} steps logged to project {a.project!r}; `trackio show --project {a.project}`")


if __name__ == "__main__":
    main()
