"""A real ``Trainer`` and a real TRL ``GRPOTrainer`` on a tiny model built here (CPU, no
network), each run twice from the same weights: once with transformers' own
``report_to="trackio"`` and once with ``run.callback()``; both read back through Trackio."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from datasets import Dataset
from trackio.sqlite_storage import SQLiteStorage
from transformers import (
    DataCollatorForLanguageModeling,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from trl import GRPOConfig, GRPOTrainer

import trackio_otel
from examples import tiny_lm
from tests.conftest import free_port, runs

ROOT = Path(__file__).resolve().parent.parent
COMMON = {"use_cpu": True, "save_strategy": "no", "disable_tqdm": True, "seed": 0}
PROMPTS = ["what is one plus two", "what is two plus two", "what is five minus four"]
PROMPTS += ["what is three minus one"]
MAX_COMPLETION = 6
WEIGHTS = [1.0, 0.5]


def says_yes(completions: list[str], **kwargs: Any) -> list[float]:
    return [float("yes" in c.split()) for c in completions]


def brevity(completions: list[str], **kwargs: Any) -> list[float]:
    return [-len(c.split()) / MAX_COMPLETION for c in completions]


def lm_trainer(out: Path, callbacks: list[Any], **args: Any) -> Trainer:
    tok = tiny_lm.tokenizer()
    data = tiny_lm.lm_dataset(tok, 64)
    arguments = TrainingArguments(
        output_dir=str(out),
        max_steps=6,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=3,
        hub_token="secret-token",
        **COMMON,
        **args,
    )
    return Trainer(
        model=tiny_lm.model(tok),
        args=arguments,
        train_dataset=data,
        eval_dataset=data.select(range(8)),
        data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
        callbacks=callbacks,
    )


def grpo_trainer(out: Path, callbacks: list[Any], **args: Any) -> GRPOTrainer:
    tok = tiny_lm.tokenizer()
    defaults = {"max_steps": 3, "per_device_train_batch_size": 4, "num_generations": 2}
    arguments = GRPOConfig(
        output_dir=str(out),
        max_completion_length=MAX_COMPLETION,
        logging_steps=1,
        reward_weights=WEIGHTS,
        **COMMON,
        **{**defaults, **args},
    )
    return GRPOTrainer(
        model=tiny_lm.model(tok),
        processing_class=tok,
        reward_funcs=[says_yes, brevity],
        args=arguments,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS * 4}),
        eval_dataset=Dataset.from_dict({"prompt": PROMPTS[:2]}),
        callbacks=callbacks,
    )


def side_by_side(make: Any, project: str, tmp_path: Path, **args: Any) -> tuple[dict, dict]:
    """Train natively (``report_to="trackio"``), then through the integration; the two
    runs' records (name → run record)."""
    native = make(
        tmp_path / "native", [], report_to="trackio", project=project, run_name="native", **args
    )
    native.train()
    run = trackio_otel.init(project=project, name="otel", gpu=False)
    callback = run.callback()
    assert isinstance(callback, TrainerCallback)
    make(tmp_path / "otel", [callback], report_to="none", **args).train()
    run.finish()
    by_name = {r["name"]: r for r in runs(project)}
    return by_name["native"], by_name["otel"]


def logs(project: str, run: dict) -> list[dict]:
    rows = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    return [r for r in rows if set(r) - {"timestamp", "step"}]


def config(project: str, run: dict) -> dict:
    return SQLiteStorage.get_run_config(project, run_id=run["id"])


def native_at_global_step(rows: list[dict]) -> dict[tuple[int, str], Any]:
    """Native rows keyed by ``train/global_step`` (native's own step counts log calls)."""
    return {
        (r["train/global_step"], k): v
        for r in rows
        if "train/global_step" in r
        for k, v in r.items()
        if k not in ("timestamp", "step", "train/global_step") and isinstance(v, (int, float))
    }


def ours_by_step(rows: list[dict]) -> dict[tuple[int, str], Any]:
    return {
        (r["step"], k): v
        for r in rows
        for k, v in r.items()
        if k not in ("timestamp", "step") and isinstance(v, (int, float))
    }


def assert_matches_native(project: str, native: dict, ours: dict) -> None:
    """Every key native logs, at the same global step, with the same value (runtimes aside)."""
    want = native_at_global_step(logs(project, native))
    got = ours_by_step(logs(project, ours))
    timing = ("runtime", "per_second", "step_time")
    want = {k: v for k, v in want.items() if not any(t in k[1] for t in timing)}
    assert want, "native logged nothing"
    missing = sorted(k for k in want if k not in got)
    assert not missing, missing
    assert {k: got[k] for k in want} == pytest.approx(want, rel=1e-5, nan_ok=True)
    native_config, our_config = config(project, native), config(project, ours)
    # transformers calls ``trackio.config.update(d, allow_val_change=True)``, wandb-style, on
    # what is a plain dict in Trackio: the keyword lands as a key of native's config
    user_keys = {k for k in native_config if not k.startswith("_")} - {"allow_val_change"}
    assert user_keys <= set(our_config), sorted(user_keys - set(our_config))
    assert our_config["model/num_parameters"] == native_config["model/num_parameters"] > 0
    assert our_config["hub_token"] == "<HUB_TOKEN>" and our_config["num_hidden_layers"] == 2
    differ = {"output_dir", "logging_dir", "run_name", "report_to", "project"}  # by design
    same = user_keys - differ
    assert {k: our_config[k] for k in same} == {k: native_config[k] for k in same}


def phase_spans(project: str, run: dict) -> dict[int, list[str]]:
    """step → names of the phase spans under that step's span."""
    db = SQLiteStorage.get_project_db_path(project)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT p.name, s.attributes FROM otel_spans p JOIN otel_spans s"
            " ON p.parent_span_id = s.span_id AND p.trace_id = s.trace_id"
            " WHERE s.name = 'trackio.train.step' AND s.run_id = ?",
            (run["id"],),
        ).fetchall()
    by_step: dict[int, list[str]] = {}
    for name, attributes in rows:
        by_step.setdefault(json.loads(attributes)["trackio.step"], []).append(name)
    return by_step


def test_trainer_matches_native_and_times_phases(project, tmp_path):
    native, ours = side_by_side(lm_trainer, project, tmp_path)
    assert_matches_native(project, native, ours)
    eval_steps = sorted(r["step"] for r in logs(project, ours) if "eval/loss" in r)
    assert eval_steps == [3, 6]  # at the global step (native's own counter says otherwise)

    phases = phase_spans(project, ours)
    assert sorted(phases) == [1, 2, 3, 4, 5, 6]
    for names in phases.values():  # two micro-batches per optimizer step
        assert sorted(names) == sorted(
            ["data_wait", "forward", "forward", "backward", "backward", "optimizer"]
        )
    timed = {r["step"]: r for r in logs(project, ours) if "train/step_time_ms" in r}
    for row in timed.values():
        inside = sum(row[f"train/phase/{p}_ms"] for p in ("forward", "backward", "optimizer"))
        assert 0 < inside <= row["train/step_time_ms"]
        assert row["train/phase/data_wait_ms"] > 0


def test_grpo_rollouts_match_trls_own_completions(project, tmp_path):
    native, ours = side_by_side(grpo_trainer, project, tmp_path, log_completions=True)
    assert_matches_native(project, native, ours)

    # TRL's own completions table (log_completions) is the reference for every rollout
    table = pd.concat(
        pd.read_parquet(p) for p in sorted((tmp_path / "otel" / "completions").glob("*.parquet"))
    )
    expected = sorted(
        (int(row.step), row.prompt, row.completion, row.says_yes, row.brevity, row.advantage)
        for row in table.itertuples()
    )
    traces = SQLiteStorage.get_traces(project, "otel", run_id=ours["id"], sort="step_asc")
    rollouts = [t for t in traces if t["key"] == "rollout"]
    assert len(rollouts) == 3 * 4  # 3 steps x 4 completions, one trace each
    got = []
    lengths: dict[int, list[int]] = {}
    cut: dict[int, list[bool]] = {}
    totals: dict[int, list[float]] = {}
    for t in rollouts:
        meta, messages = t["metadata"], t["messages"]
        (generation,) = [s for s in t["spans"] if s["kind"] == "generation"]
        prompt, completion = messages[0]["content"], generation["output"]["content"]
        assert messages[0]["role"] == "user" and generation["input"] == messages[:1]
        # the chat ends with the answer; the store leaves an empty one ("": EOS at once) out
        assert messages[1:] == (
            [{"role": "assistant", "content": completion}] if completion else []
        )
        rewards = (meta["rollout.reward.says_yes"], meta["rollout.reward.brevity"])
        got.append((t["step"], prompt, completion, *rewards, meta["rollout.advantage"]))
        assert meta["rollout.reward"] == pytest.approx(
            sum(w * r for w, r in zip(WEIGHTS, rewards, strict=True))
        )
        totals.setdefault(t["step"], []).append(meta["rollout.reward"])
        assert generation["usage"]["input_tokens"] == len(prompt.split())
        assert generation["duration_ms"] > 0  # TRL's generate section
        lengths.setdefault(t["step"], []).append(generation["usage"]["output_tokens"])
        cut.setdefault(t["step"], []).append(generation["output"]["finish_reason"] == "length")
    assert sorted(got) == expected  # the same floats, not just close ones
    # token counts and cut-offs agree with TRL's own per-step statistics of them
    trl_stats = {r["step"]: r for r in logs(project, ours) if "train/completions/mean_length" in r}
    assert sorted(trl_stats) == sorted(lengths) == [1, 2, 3]
    for step, row in trl_stats.items():
        assert sum(lengths[step]) / 4 == pytest.approx(row["train/completions/mean_length"])
        assert max(lengths[step]) == row["train/completions/max_length"]
        assert sum(cut[step]) / 4 == pytest.approx(row["train/completions/clipped_ratio"])
        assert sum(totals[step]) / 4 == pytest.approx(row["train/reward"])

    groups: dict[str, list[int]] = {}
    for t in rollouts:
        groups.setdefault(t["metadata"]["rollout.group_id"], []).append(
            t["metadata"]["rollout.index"]
        )
    assert len(groups) == 3 * 2 and all(sorted(i) == [0, 1] for i in groups.values())
    for t in rollouts:  # one group = one prompt
        siblings = [
            u["messages"][0]["content"]
            for u in rollouts
            if u["metadata"]["rollout.group_id"] == t["metadata"]["rollout.group_id"]
        ]
        assert len(set(siblings)) == 1

    phases = phase_spans(project, ours)
    trl_phases = {"generate", "rewards", "reward/says_yes", "reward/brevity", "log_probs", "loss"}
    assert sorted(phases) == [1, 2, 3]
    for names in phases.values():
        assert trl_phases | {"data_wait", "optimizer"} <= set(names)
        # the one forward that builds a graph (the loss's); generation's are not counted
        assert names.count("forward") == names.count("backward") == 1


def test_logging_more_often_than_generating_sends_each_completion_once(project, tmp_path):
    run = trackio_otel.init(project=project, gpu=False)
    # 8 completions generated at steps 1 and 3, logged at every step
    grpo_trainer(tmp_path, [run.callback()], report_to="none", steps_per_generation=2).train()
    run.finish()
    (record,) = runs(project)
    traces = SQLiteStorage.get_traces(project, record["name"], run_id=record["id"])
    assert sorted(t["step"] for t in traces) == [1] * 8 + [3] * 8
    assert not any(math.isnan(t["metadata"]["rollout.advantage"]) for t in traces)


def test_train_end_flush_is_off_the_training_thread(project, tmp_path, monkeypatch):
    """Against an endpoint nobody answers, ``train()`` returns while the flush still waits."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")  # seconds the exporters retry
    run = trackio_otel.init(
        project=project, endpoint=f"127.0.0.1:{free_port()}", embedded=False, gpu=False
    )
    lm_trainer(tmp_path, [run.callback()], report_to="none").train()
    flushing = [t for t in threading.enumerate() if t.name == "trackio-otel-train-end-flush"]
    assert flushing and flushing[0].is_alive()
    flushing[0].join(30)  # then it gives up, so no retry outlives the test
    run.finish()
    assert not flushing[0].is_alive()


def test_sdk_works_without_transformers(tmp_path):
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "import trackio_otel\n"
        "with trackio_otel.init(project='no-hf', gpu=False) as run:\n"
        "    run.log({'x': 1.0})\n"
        "    try:\n"
        "        run.callback()\n"
        "    except ImportError:\n"
        "        print('callback needs transformers')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"TRACKIO_DIR": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "callback needs transformers"
    assert (tmp_path / "no-hf.db").exists()


def test_grpo_eval_completions_are_rollouts_of_their_own(project, tmp_path):
    run = trackio_otel.init(project=project, gpu=False)
    grpo_trainer(
        tmp_path,
        [run.callback()],
        report_to="none",
        max_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        per_device_eval_batch_size=4,
    ).train()
    run.finish()
    (record,) = runs(project)
    traces = SQLiteStorage.get_traces(project, record["name"], run_id=record["id"])
    evals = [t for t in traces if t["key"] == "rollout/eval"]
    assert len(evals) == 2 * 2  # 2 eval prompts x num_generations, at the step evaluated
    assert {t["step"] for t in evals} == {2}
    assert {t["metadata"]["rollout.group_id"] for t in evals} == {"2-0", "2-1"}
    assert sorted(t["step"] for t in traces if t["key"] == "rollout") == [1] * 4 + [2] * 4
