"""A GRPO-style loop: per step, groups of rollouts per prompt, rewards, group-normalised
advantages, and the step's mean reward. A toy policy stands in for the model (CPU only).

    TRACKIO_DIR=/tmp/trackio python examples/grpo_loop.py --project grpo-demo --steps 5
"""

from __future__ import annotations

import argparse
import random
import statistics

import trackio_otel

PROMPTS = [("2+3", 5), ("4*4", 16)]


def sample(rng: random.Random, target: int, skill: float) -> int:
    """A toy policy: right with probability ``skill``, else off by a little."""
    return target if rng.random() < skill else target + rng.choice([-2, -1, 1, 2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="grpo-demo")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--group-size", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(0)
    skill = 0.3
    config = {"group_size": args.group_size, "algo": "grpo"}
    with trackio_otel.init(project=args.project, config=config, gpu=False) as run:
        for step in range(args.steps):
            with run.step(step) as s:
                rewards_all = []
                for g, (prompt, target) in enumerate(PROMPTS):
                    answers = [sample(rng, target, skill) for _ in range(args.group_size)]
                    rewards = [1.0 if a == target else -abs(a - target) / 4 for a in answers]
                    mean, std = statistics.fmean(rewards), statistics.pstdev(rewards) or 1.0
                    for i, (answer, reward) in enumerate(zip(answers, rewards, strict=True)):
                        with run.rollout(
                            group=f"{step}-{g}", index=i, environment="arith", policy_version=step
                        ) as r:
                            r.message("user", f"Compute {prompt}")
                            r.generation(
                                model="toy-policy",
                                output=str(answer),
                                usage={"input_tokens": 4, "output_tokens": 1},
                            )
                            r.reward(reward, correct=float(answer == target))
                            r.advantage((reward - mean) / std)
                    rewards_all.extend(rewards)
                s.log({"train/reward_mean": statistics.fmean(rewards_all), "train/skill": skill})
            skill = min(0.95, skill + 0.15)
    print(f"logged {args.steps} GRPO steps to project {args.project!r}")


if __name__ == "__main__":
    main()
