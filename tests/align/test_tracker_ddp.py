"""Under DDP the EMA class-mean tracker sees the global batch: every rank holds the same means, equal
to one process fed the whole batch (gloo, 2 processes)."""

import os

import pytest
import torch
import torch.distributed as dist

from nclab.align.tracker import EMAClassMeans
from tests.conftest import free_port, run_ranks


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        g = torch.Generator().manual_seed(0)
        tr = EMAClassMeans(4, 3, momentum=0.9)
        for _ in range(5):
            f = torch.randn(12, 3, generator=g)
            y = torch.randint(0, 3, (12,), generator=g)  # class 3 never appears
            tr.update(f[rank::world], y[rank::world])  # this rank's share of the global batch
        torch.save({"means": tr.means, "seen": tr.seen}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_tracker_is_identical_on_every_rank_and_equals_one_process(tmp_path):
    run_ranks(_worker, 2, free_port(), str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(r0["means"], r1["means"]) and torch.equal(r0["seen"], r1["seen"])
    g = torch.Generator().manual_seed(0)
    ref = EMAClassMeans(4, 3, momentum=0.9)
    for _ in range(5):
        f = torch.randn(12, 3, generator=g)
        y = torch.randint(0, 3, (12,), generator=g)
        ref.update(f, y)
    torch.testing.assert_close(r0["means"], ref.means)
    assert r0["seen"].tolist() == [True, True, True, False]
