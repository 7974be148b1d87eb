"""Training throughput of resnet32_cifar on CIFAR-shaped synthetic data, with and without NC tracking.

Baseline (same run): one training epoch (forward, backward, SGD step, batched augmentation) without
tracking. Two ways to track (``train.nc_source``):
- ``eval``: one streaming FeatureStats pass over the training set after the epoch (eval-mode forward,
  no stored copy) plus the metric computation;
- ``online``: the epoch's own training-batch features (already computed by the forward pass) are
  added to a FeatureStats as the epoch runs, plus the metric computation: no extra forward pass.
Target (issue 4): tracking costs at most 10% of an epoch when evaluated every epoch.

On CUDA (``--device cuda``) the data lives on the GPU, as ``train.data_on_device`` puts it there, and every
timing ends with ``torch.cuda.synchronize()``.

Usage: python bench/train.py [--n 2048] [--batch 128] [--classes 10] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from nclab.heads import create_head
from nclab.metrics import FeatureStats, nc_metrics
from nclab.models import create_model
from nclab.train.data_setup import TrainData, preprocess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.n, 3, 32, 32), dtype=torch.uint8, generator=g).to(dev)
    y = torch.randint(0, args.classes, (args.n,), generator=g)
    y[: args.classes] = torch.arange(args.classes)
    y = y.to(dev)
    data = TrainData(
        x,
        y,
        x[:10],
        y[:10],
        torch.bincount(y).tolist(),
        [],
        torch.tensor([0.49, 0.48, 0.45]),
        torch.tensor([0.25, 0.24, 0.26]),
        "",
        3,
        3 * 32 * 32,
    )
    model = create_model("resnet32_cifar").to(dev)
    head = create_head("linear", model.num_features, args.classes).to(dev)
    opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.05, momentum=0.9)

    def epoch(online: FeatureStats | None = None):
        model.train()
        order = torch.randperm(args.n, generator=g).to(dev)
        for s in range(0, args.n, args.batch):
            idx = order[s : s + args.batch]
            xb = preprocess(x[idx], data, augment=True, generator=g)
            feats = model(xb)
            if online is not None:
                online.update(feats.detach().float(), y[idx])
            loss = torch.nn.functional.cross_entropy(head(feats), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    @torch.no_grad()
    def track():
        model.eval()
        st = FeatureStats(args.classes, model.num_features, device=dev)
        for s in range(0, args.n, args.batch):
            st.update(model(preprocess(x[s : s + args.batch], data)), y[s : s + args.batch])
        nc_metrics(st, head.weight, head.bias, allow_missing=True)

    def timed(fn) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    def epoch_online() -> None:
        epoch(online)
        nc_metrics(online, head.weight, head.bias, allow_missing=True)

    epoch()  # warm-up
    t_epoch = timed(epoch)
    t_track = timed(track)
    online = FeatureStats(args.classes, model.num_features, device=dev)
    t_online = timed(epoch_online) - t_epoch
    print(
        f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, resnet32_cifar, "
        f"N={args.n}, batch {args.batch}"
    )
    print(f"{'':28} {'seconds':>9} {'images/s':>10}")
    print(f"{'epoch without tracking':28} {t_epoch:>9.2f} {args.n / t_epoch:>10.0f}")
    print(
        f"{'epoch + NC tracking (eval)':28} {t_epoch + t_track:>9.2f} {args.n / (t_epoch + t_track):>10.0f}"
    )
    t_on = t_epoch + t_online
    print(f"{'epoch + NC tracking (online)':28} {t_on:>9.2f} {args.n / t_on:>10.0f}")
    print(
        f"tracking cost per epoch: eval {100 * t_track / t_epoch:.1f}%, online {100 * t_online / t_epoch:.1f}%"
    )


if __name__ == "__main__":
    main()
