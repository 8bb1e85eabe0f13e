"""Hugging Face Transformers and TRL: ``Trainer(..., callbacks=[run.callback()])``.

What ``report_to="trackio"`` gives, through the run: the config (``TrainingArguments.to_dict()``
with tokens redacted, the model config, ``model/num_parameters``) and every ``on_log`` under
transformers' own key names (``rewrite_logs``: ``train/loss``, ``eval/loss``), at
``state.global_step`` rather than a counter of log calls. On top of that:

* each optimizer step is a ``trackio.train.step`` span with phases: ``data_wait`` (fetching
  the step's batches, before ``on_step_begin``), ``forward`` (the model's forward passes
  that build a graph, from PyTorch module hooks), ``backward`` (forward end to the last
  parameter's gradient, from PyTorch's post-accumulate-grad hooks), ``optimizer``
  (``on_pre_optimizer_step`` → ``on_optimizer_step``), and with TRL the sections TRL
  profiles itself (``generate``, ``rewards``, ``reward/<func>``, ``log_probs``, ``loss``,
  …). TRL's sections nest, so phase times can overlap;
* with TRL's ``GRPOTrainer``, one rollout trace per completion at each logged step, read
  from the buffers TRL fills for its own completions table (``trainer._logs``): prompt,
  completion, each reward function's score under TRL's name, the weighted total, the
  advantage, group id and index, completion tokens and finish reason (TRL's own rule: the
  last token is neither EOS nor pad → ``length``), timed by TRL's ``generate`` section.

Hooks are the frameworks' own (callback events, ``nn.Module`` hooks); TRL exposes its
profiled sections only to wandb/mlflow/trackio, so its ``ProfilingContext`` class gets a
thin timing wrapper for the length of ``train()``. The user's model only gets PyTorch's
removable hooks (taken off at ``on_train_end``); none of its methods is replaced.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from transformers import Trainer, TrainerCallback
from transformers.integrations.integration_utils import rewrite_logs

from trackio_otel.sdk.failopen import fail_open

if TYPE_CHECKING:
    from trackio_otel.sdk.run import Run
    from trackio_otel.sdk.steps import Step

FLUSH_TIMEOUT_S = 5.0
"""The end-of-training flush runs on its own thread and gives up after this long."""

TRL_PHASES = {
    "_prepare_inputs": "prepare_inputs",
    "_generate_and_score_completions": "generate_and_score",
    "transformers.generate": "generate",
    "transformers.generate_batch": "generate",
    "vLLM.generate": "generate",
    "_calculate_rewards": "rewards",
    "_get_per_token_logps_and_entropies": "log_probs",
    "compute_loss": "loss",
}
"""TRL's profiled section names (``<Trainer class>.<name>``) → phase names."""


class TrackioCallback(TrainerCallback):
    """Reports a ``Trainer``'s config, logs, step phases and (TRL) rollouts to a run."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._trainer: Trainer | None = None
        self._step: Step | None = None
        self._last_event_ns = time.time_ns()  # data wait runs from here to on_step_begin
        self._forward_start_ns: int | None = None
        self._forward_end_ns: int | None = None
        self._grad_ns = 0
        self._optimizer_start_ns = 0
        self._generation: tuple[int, int] | None = None  # TRL's latest generate section
        self._logged_advantages: list[float] = []  # TRL's entries already sent as rollouts
        self._undo: list[Callable[[], None]] = []

    # --- training begins and ends ----------------------------------------------------------
    @fail_open()
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        self._release()  # a train() that raised never reached on_train_end
        self._trainer = _calling_trainer()
        if state.is_world_process_zero:
            self.run.update_config(_config(args, model))
        if model is not None:
            self._watch_model(model)
        self._watch_trl_sections()
        self._last_event_ns = time.time_ns()

    @fail_open()
    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._end_step()
        self._release()
        threading.Thread(
            target=self.run.flush,
            kwargs={"timeout_s": FLUSH_TIMEOUT_S},
            name="trackio-otel-train-end-flush",
            daemon=True,
        ).start()

    # --- one optimizer step ----------------------------------------------------------------
    @fail_open()
    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last_event_ns = time.time_ns()

    @fail_open()
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = time.time_ns()
        self._end_step()
        self._step = self.run.step(int(state.global_step) + 1)
        self._step.__enter__()
        self._step.record_phase("data_wait", self._last_event_ns, now)

    @fail_open()
    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._record_backward()  # a micro-batch of gradient accumulation

    @fail_open()
    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._record_backward()
        self._optimizer_start_ns = time.time_ns()

    @fail_open()
    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._step is not None:
            self._step.record_phase("optimizer", self._optimizer_start_ns, time.time_ns())

    @fail_open()
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._end_step()
        self._last_event_ns = time.time_ns()

    # --- what the trainer logs -------------------------------------------------------------
    @fail_open()
    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if state.is_world_process_zero:
            step = int(state.global_step)
            self.run.log({**_scalars(rewrite_logs(logs or {})), "train/global_step": step}, step)
            self._log_rollouts(step, evaluating=any(k.startswith("eval_") for k in logs or {}))
        self._last_event_ns = time.time_ns()

    @fail_open()
    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last_event_ns = time.time_ns()  # metrics arrive through on_log

    @fail_open()
    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last_event_ns = time.time_ns()

    @fail_open()
    def on_predict(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any], **kwargs: Any
    ) -> None:
        if state.is_world_process_zero:
            self.run.log(_scalars(rewrite_logs(metrics)), int(state.global_step))

    # --- phases from the model's hooks and TRL's sections -----------------------------------
    def _watch_model(self, model: torch.nn.Module) -> None:
        handles = [
            model.register_forward_pre_hook(self._forward_begins),
            model.register_forward_hook(self._forward_ends),
            *(
                p.register_post_accumulate_grad_hook(self._gradient_ready)
                for p in model.parameters()
                if p.requires_grad
            ),
        ]
        self._undo.append(lambda: [h.remove() for h in handles])

    @fail_open()
    def _forward_begins(self, module: Any, args: Any) -> None:
        if self._step is not None and torch.is_grad_enabled():  # not generation, not eval
            self._forward_start_ns = time.time_ns()

    @fail_open()
    def _forward_ends(self, module: Any, args: Any, output: Any) -> None:
        if self._step is not None and self._forward_start_ns is not None:
            self._forward_end_ns = time.time_ns()
            self._step.record_phase("forward", self._forward_start_ns, self._forward_end_ns)
            self._forward_start_ns = None

    def _gradient_ready(self, param: Any) -> None:  # once per parameter per backward: cheap
        self._grad_ns = time.time_ns()

    def _record_backward(self) -> None:
        start = self._forward_end_ns
        if self._step is not None and start is not None and self._grad_ns > start:
            self._step.record_phase("backward", start, self._grad_ns)
        self._forward_end_ns = None

    def _watch_trl_sections(self) -> None:
        profiling = sys.modules.get("trl.extras.profiling")
        if profiling is None:
            return
        cls = profiling.ProfilingContext
        enter, exit_ = cls.__enter__, cls.__exit__

        def timed_enter(ctx: Any) -> Any:
            ctx._trackio_otel_start_ns = time.time_ns()
            return enter(ctx)

        def timed_exit(ctx: Any, *exc: Any) -> Any:
            try:
                return exit_(ctx, *exc)
            finally:
                self._section(ctx.name, getattr(ctx, "_trackio_otel_start_ns", None))

        cls.__enter__, cls.__exit__ = timed_enter, timed_exit

        def restore() -> None:
            cls.__enter__, cls.__exit__ = enter, exit_

        self._undo.append(restore)

    @fail_open()
    def _section(self, name: str, start_ns: int | None) -> None:
        end_ns = time.time_ns()
        if start_ns is None:
            return
        section = name.split(".", 1)[-1]  # "GRPOTrainer.transformers.generate"
        phase = TRL_PHASES.get(section, section)
        if section in (getattr(self._trainer, "reward_func_names", None) or ()):
            phase = f"reward/{section}"
        if phase == "generate":
            self._generation = (start_ns, end_ns)
        if self._step is not None:
            self._step.record_phase(phase, start_ns, end_ns)

    def _release(self) -> None:
        """Remove the hooks on the model and restore TRL's class."""
        while self._undo:
            self._undo.pop()()

    def _end_step(self) -> None:
        if self._step is not None:
            self._step.__exit__(None, None, None)
            self._step = None

    # --- GRPO rollouts ----------------------------------------------------------------------
    def _log_rollouts(self, step: int, evaluating: bool) -> None:
        """One rollout per completion of TRL's latest generation batch (``_logs`` holds it,
        each generation replacing it whole), once: a batch already sent is recognised by
        the identity of its advantage floats."""
        trainer = self._trainer
        buffers = getattr(trainer, "_logs", None)
        if trainer is None or not buffers or not buffers.get("advantages"):
            return
        advantages = list(buffers["advantages"])
        if [id(a) for a in advantages] == [id(a) for a in self._logged_advantages]:
            return  # logged more often than generated: nothing new
        self._logged_advantages = advantages  # keeps them alive, so their ids stay theirs
        names = list(trainer.reward_func_names)
        weights = [float(w) for w in trainer.reward_weights.tolist()]
        rewards = [list(buffers["rewards"].get(n, ())) for n in names]
        group_size = trainer.num_generations_eval if evaluating else trainer.num_generations
        tokens = {} if evaluating else _completion_tokens(trainer)
        generation = self._generation or (None, None)
        start, end = (t / 1e9 if t is not None else None for t in generation)
        model = getattr(trainer.model, "name_or_path", "") or type(trainer.model).__name__
        prompts, completions = list(buffers["prompt"]), list(buffers["completion"])
        for i, (prompt, completion, advantage) in enumerate(
            zip(prompts, completions, advantages, strict=False)
        ):
            scores = {n: r[i] for n, r in zip(names, rewards, strict=True) if i < len(r)}
            scored = {n: float(v) for n, v in scores.items() if v is not None and not math.isnan(v)}
            total = sum(w * scored[n] for n, w in zip(names, weights, strict=True) if n in scored)
            answer = _answer(completion)
            matches = tokens.get(_text(answer))
            prompt_tokens, completion_tokens, finish = (
                matches.pop(0) if matches else (None, None, None)
            )
            usage = {"input_tokens": prompt_tokens, "output_tokens": completion_tokens}
            with self.run.rollout(
                step=step,
                group=f"{step}-{i // group_size}",
                index=i % group_size,
                environment="eval" if evaluating else None,
            ) as rollout:
                for message in _messages(prompt):
                    rollout.message(**message)
                rollout.generation(
                    model=model,
                    output=answer,
                    usage={k: v for k, v in usage.items() if v is not None},
                    finish_reason=finish,
                    start_time=start,
                    end_time=end,
                )
                rollout.reward(total if scored else None, **scored)
                rollout.advantage(float(advantage))


def _calling_trainer() -> Trainer | None:
    """transformers hands callbacks the model, not the trainer, but TRL's completions live
    on the trainer: it is ``self`` in the frame that fired ``on_train_begin``."""
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, Trainer):
            return owner
        frame = frame.f_back
    return None


def _config(args: Any, model: Any) -> dict[str, Any]:
    """The config transformers' own ``TrackioCallback.setup`` records."""
    config = dict(args.to_dict())  # tokens already redacted (``<HUB_TOKEN>``)
    model_config = getattr(model, "config", None)
    if model_config is not None:
        model_config = model_config if isinstance(model_config, dict) else model_config.to_dict()
        config = {**model_config, **config}
    peft_config = getattr(model, "peft_config", None)
    if peft_config is not None:
        config = {"peft_config": peft_config, **config}
    num_parameters = getattr(model, "num_parameters", None)
    if callable(num_parameters):
        config["model/num_parameters"] = num_parameters()
    return config


def _scalars(logs: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _completion_tokens(trainer: Any) -> dict[str, list[tuple[int, int | None, str]]]:
    """Completion text → (prompt tokens, completion tokens, finish reason) for the batches
    TRL buffered for training (shuffled, so matched back by their decoded text)."""
    stop_ids = {*trainer.eos_token_ids, trainer._tokenizer.pad_token_id}
    found: dict[str, list[tuple[int, int | None, str]]] = {}
    for batch in getattr(trainer, "_buffered_inputs", None) or []:
        ids, mask = batch["completion_ids"], batch["completion_mask"]
        texts = trainer.processing_class.batch_decode(ids, skip_special_tokens=True)
        lengths, prompt_lengths = mask.sum(1).tolist(), batch["prompt_mask"].sum(1).tolist()
        for row, text, n, p in zip(ids.tolist(), texts, lengths, prompt_lengths, strict=True):
            finish = "stop" if n and row[n - 1] in stop_ids else "length"
            # n is 0 only where mask_truncated_completions masked a cut-off completion
            found.setdefault(text, []).append((int(p), int(n) or None, finish))
    return found


def _messages(prompt: Any) -> list[dict[str, Any]]:
    """TRL prompts are text or a conversation (a list of messages)."""
    if isinstance(prompt, list):
        return [dict(m) for m in prompt if isinstance(m, dict)]
    return [{"role": "user", "content": prompt}]


def _answer(completion: Any) -> Any:
    """The completion as text, or the last message of a conversational completion."""
    if isinstance(completion, list) and completion:
        return completion[-1]
    return completion


def _text(answer: Any) -> str:
    return answer.get("content", "") if isinstance(answer, dict) else str(answer)
