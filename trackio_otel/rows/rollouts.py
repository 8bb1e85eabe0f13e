"""Rollouts as step statistics: one Trackio ``metrics`` row per (run, step) that sums up
every rollout trace at that step, as TRL's ``GRPOTrainer`` logs its rewards.

One row per rollout at the same step drew as a vertical zig-zag; the per-rollout values
stay in each trace's metadata (``rollout.reward``, ...) and in ``otel_spans``. The row is
computed again from the step's stored trace rows whenever a rollout of that step lands or
moves, so it is right whichever request, writer or order brought the rollouts.

Keys (TRL's names under ``rollout/`` where TRL has one; docs/semconv.md):
``rollout/reward`` (mean), ``rollout/reward_std``, ``rollout/reward_min``,
``rollout/reward_max``, ``rollout/count``, ``rollout/rewards/<name>/mean`` and ``/std``
per reward function, ``rollout/advantage/mean``, ``/std``, ``/min``, ``/max``, and for
groups (``rollout.group_id``) ``rollout/group_reward_std`` (mean of the groups' reward
std) and ``rollout/frac_reward_zero_std`` (share of groups whose rewards are all equal).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

REWARD = "rollout.reward"
REWARD_PREFIX = "rollout.reward."
ADVANTAGE = "rollout.advantage"
GROUP = "rollout.group_id"
"""Trace metadata keys (``trackio.rollout.*`` less its ``trackio.``)."""


def is_rollout(metadata: dict[str, Any]) -> bool:
    """The trace carries a numeric reward or advantage."""
    return any(
        _number(v) is not None
        for k, v in metadata.items()
        if k in (REWARD, ADVANTAGE) or k.startswith(REWARD_PREFIX)
    )


def statistics_of(rollouts: list[dict[str, Any]]) -> dict[str, float | int]:
    """The step's statistics from its rollout traces' metadata (an empty list: none)."""
    rewards = _values(rollouts, REWARD)
    out: dict[str, float | int] = {"rollout/count": len(rollouts)}
    if rewards:
        out.update(
            {
                "rollout/reward": statistics.fmean(rewards),
                "rollout/reward_std": _std(rewards),
                "rollout/reward_min": min(rewards),
                "rollout/reward_max": max(rewards),
            }
        )
    names = sorted({k for m in rollouts for k in m if k.startswith(REWARD_PREFIX)})
    for key in names:
        if values := _values(rollouts, key):
            name = key[len(REWARD_PREFIX) :]
            out[f"rollout/rewards/{name}/mean"] = statistics.fmean(values)
            out[f"rollout/rewards/{name}/std"] = _std(values)
    if advantages := _values(rollouts, ADVANTAGE):
        out["rollout/advantage/mean"] = statistics.fmean(advantages)
        out["rollout/advantage/std"] = _std(advantages)
        out["rollout/advantage/min"] = min(advantages)
        out["rollout/advantage/max"] = max(advantages)
    groups: dict[str, list[float]] = defaultdict(list)
    for m in rollouts:
        if m.get(GROUP) is not None and (r := _number(m.get(REWARD))) is not None:
            groups[str(m[GROUP])].append(r)
    if groups:
        stds = [_std(g) for g in groups.values()]
        out["rollout/group_reward_std"] = statistics.fmean(stds)
        out["rollout/frac_reward_zero_std"] = sum(s == 0 for s in stds) / len(stds)
    return out


def _values(rollouts: list[dict[str, Any]], key: str) -> list[float]:
    return [v for m in rollouts if (v := _number(m.get(key))) is not None]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _std(values: list[float]) -> float:
    """The sample standard deviation, as TRL's ``nanstd`` (0 for a single value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0
