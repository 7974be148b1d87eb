"""The two-pass path under DDP (gloo, 2 processes): each rank reads its shard, each pass's sums are
all-reduced, and every rank returns the single-process result (issue 19)."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist

from nclab.metrics import measure, measure_batches
from tests.conftest import free_port, run_ranks
from tests.metrics.reference import long_tailed


def _data():
    # long-tailed, with a one-sample class (3), K = 7 > d = 5 and a common offset
    h, y, w, b, _ = long_tailed(k=7, d=5, seed=11, counts=[60, 40, 25, 1, 12, 8, 5], offset=50.0)
    return (torch.as_tensor(np.asarray(v), dtype=torch.float64) for v in (h, w, b)), torch.as_tensor(y)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        (h, w, b), y = _data()
        hs, ys = h[rank::world], y[rank::world]  # this rank's shard, in batches of 9

        def batches():
            return [(hs[i : i + 9], ys[i : i + 9]) for i in range(0, len(ys), 9)]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = measure_batches(
                batches, w, b, counts=[500, 300, 60, 1, 30, 10, 5], path="two_pass", distributed=True
            )
        with open(f"{out}/rank{rank}.json", "w") as f:
            json.dump(res, f)
    finally:
        dist.destroy_process_group()


def _close(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, z) in enumerate(zip(a, b)):
            _close(x, z, f"{path}[{i}]")
    elif isinstance(a, float) and b is not None:
        # the sums are added in another order across ranks: rounding only (angles near 0 are arccos
        # of cosines near 1; nc1_spectrum's "err" is each path's own rounding estimate, ~1e-12 for the
        # one-pass reference and 0 for the two-pass path)
        tol = 1e-4 if "angle" in path else 1e-9 if "/err[" in path else 1e-12
        assert b == pytest.approx(a, rel=1e-9, abs=tol), path
    else:
        assert a == b, path


@pytest.mark.slow
def test_two_pass_under_two_gloo_ranks_equals_one_process(tmp_path):
    run_ranks(_worker, 2, free_port(), str(tmp_path))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1  # every rank computes the metrics from the same reduced sums
    (h, w, b), y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = measure(h, y, w, b, counts=[500, 300, 60, 1, 30, 10, 5], path="two_pass")
        ref = measure(h, y, w, b, counts=[500, 300, 60, 1, 30, 10, 5], path="one_pass")
    assert r0["path"] == "two_pass" and r0["num_samples"] == len(y)
    assert r0["nc4"] is not None and r0["per_class"]["nc1"][3] is None
    _close(one, r0)
    ref["path"] = "two_pass"
    _close(ref, r0)
