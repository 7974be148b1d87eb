"""Where a Fashion-MNIST-LT grid run spends its CPU time, and what channels_last and the evaluation batch
change (issue 20: the 30-epoch grids on a 2-core CPU).

One process, one thread (as `nclab sweep` runs each run: OMP_NUM_THREADS = the spec's cpus). The small
CNN of configs/recipes/fmnist_lt.yaml (cnn_small, 128-d features), random 28x28 images:
- a training epoch of the IF = 1000 split (10,069 images, batch 128, SGD with momentum), in the default
  memory format (the baseline) and in channels_last (`train.channels_last=on`);
- one evaluation pass over the 10,000 test images, at `train.eval_batch_size` 1000 and 128, each in the
  default format and in channels_last (the model converted; the input as the Trainer passes it).

Usage: OMP_NUM_THREADS=1 python bench/cpu_cnn.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from nclab.models import create_model


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--train", type=int, default=10069)
    ap.add_argument("--test", type=int, default=10000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x_train = torch.randn(args.train, 1, 28, 28, generator=g)
    x_test = torch.randn(args.test, 1, 28, 28, generator=g)

    def model(channels_last: bool) -> torch.nn.Module:
        torch.manual_seed(0)
        m = create_model("cnn_small", feature_dim=128)
        return m.to(memory_format=torch.channels_last) if channels_last else m

    def train_epoch(channels_last: bool):
        m = model(channels_last).train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)

        def run():
            for s in range(0, args.train, 128):
                xb = x_train[s : s + 128]
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                m(xb).square().mean().backward()
                opt.step()
                opt.zero_grad()

        return run

    def evaluate(channels_last: bool, bs: int):
        m = model(channels_last).eval()

        @torch.no_grad()
        def run():
            for s in range(0, args.test, bs):
                m(x_test[s : s + bs])

        return run

    rows = [("train epoch, default format (baseline)", _best(train_epoch(False), args.repeat))]
    rows.append(("train epoch, channels_last", _best(train_epoch(True), args.repeat)))
    for bs in (1000, 128):
        for cl in (False, True):
            name = f"evaluation, batch {bs}, {'channels_last' if cl else 'default format'}"
            rows.append((name, _best(evaluate(cl, bs), args.repeat)))
    base = rows[0][1]
    print("| what (1 thread) | seconds | x baseline epoch |\n|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
