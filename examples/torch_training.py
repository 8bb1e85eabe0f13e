"""A training loop with step phases (data wait, forward, backward, optimizer).

    TRACKIO_DIR=/tmp/trackio python examples/torch_training.py --project train-demo

Uses PyTorch when it is installed, else a pure-Python linear regression with the same
phases. GPU and process metrics are sampled when available (``gpu=None``).
"""

from __future__ import annotations

import argparse
import random

import trackio_otel

try:
    import torch
except ImportError:
    torch = None


def torch_loop(run: trackio_otel.Run, steps: int) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = torch.nn.Linear(8, 1).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    w = torch.randn(8, 1, device=device)
    for step in range(steps):
        with run.step(step) as s:
            with s.phase("data_wait"):
                x = torch.randn(64, 8, device=device)
                y = x @ w
            with s.phase("forward"):
                loss = torch.nn.functional.mse_loss(model(x), y)
            with s.phase("backward"):
                opt.zero_grad()
                loss.backward()
            with s.phase("optimizer"):
                opt.step()
            s.log({"train/loss": loss.item()})


def python_loop(run: trackio_otel.Run, steps: int) -> None:
    rng = random.Random(0)
    w_true, w, lr = [rng.uniform(-1, 1) for _ in range(8)], [0.0] * 8, 0.05
    for step in range(steps):
        with run.step(step) as s:
            with s.phase("data_wait"):
                xs = [[rng.gauss(0, 1) for _ in range(8)] for _ in range(64)]
                ys = [sum(a * b for a, b in zip(x, w_true, strict=True)) for x in xs]
            with s.phase("forward"):
                preds = [sum(a * b for a, b in zip(x, w, strict=True)) for x in xs]
                loss = sum((p - y) ** 2 for p, y in zip(preds, ys, strict=True)) / len(xs)
            with s.phase("backward"):
                grad = [
                    sum(2 * (p - y) * x[j] for p, y, x in zip(preds, ys, xs, strict=True)) / len(xs)
                    for j in range(8)
                ]
            with s.phase("optimizer"):
                w = [wi - lr * g for wi, g in zip(w, grad, strict=True)]
            s.log({"train/loss": loss})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="train-demo")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    backend = "torch" if torch is not None else "python"
    with trackio_otel.init(project=args.project, config={"backend": backend}) as run:
        (torch_loop if torch is not None else python_loop)(run, args.steps)
    print(f"trained {args.steps} steps ({backend}) into project {args.project!r}")


if __name__ == "__main__":
    main()
