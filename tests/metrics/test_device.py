"""Device discipline (issue 21): the metrics run where their statistics live.

There is no GPU in CI: PyTorch's fake-tensor mode creates "cuda" tensors on a CPU build and raises the
same cross-device errors a real GPU would (and DataDependentOutputException on any host
synchronisation, which makes it a sync detector too). The parts that need values (the SVD's rank
rule, the final Python floats) run on the CPU for values in the other tests; here the device-placement
parts run on fake "cuda" tensors.
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from nclab.metrics import FeatureStats, NeuralCollapse, SecondPass, functional, second_pass
from nclab.metrics.functional import Prepared

K, D, N = 5, 8, 64


def _fake_prepared(k=K, d=D, r=K - 1, dev="cuda") -> Prepared:
    """A Prepared of the right shapes on fake ``dev`` tensors (values are irrelevant in fake mode)."""
    f64 = dict(dtype=torch.float64, device=dev)
    return Prepared(
        present=torch.arange(k, device=dev),
        counts=torch.full((k,), 10.0, **f64),
        means=torch.randn(k, d, **f64),
        mu_g=torch.randn(d, **f64),
        mt=torch.randn(k, d, **f64),
        proj=torch.randn(d, r, **f64),
        num_within=10.0 * k,
        center="weighted",
        left=torch.randn(k, r, **f64),
        basis=torch.randn(d, r, **f64),
    )


def test_feature_stats_update_and_merge_on_fake_cuda_without_sync():
    with FakeTensorMode(allow_non_fake_inputs=True):
        st = FeatureStats(K, D, device="cuda")
        x = torch.randn(N, D, device="cuda")
        y = torch.randint(0, K, (N,), device="cuda")
        st.update(x, y, validate=False)  # any .item()/bool()/mask indexing raises in fake mode
        # fewer rows than classes: the per-sample branch
        st.update(x.narrow(0, 0, 3), y.narrow(0, 0, 3), validate=False)
        other = FeatureStats(K, D, device="cuda")
        other.update(x.double(), y, validate=False)
        st.merge(other)
        assert all(t.device.type == "cuda" for t in (st.counts, st.sums, st.sq_norms, st.second))
        assert st.second.dtype == torch.float64
        # the derived tensors stay on the device too, without synchronising
        assert st.means().device.type == "cuda" and st.within_scatter().device.type == "cuda"


def test_second_pass_on_fake_cuda_with_a_classifier(monkeypatch):
    """Fails before issue 21's fix: the weights were moved with .cpu() and multiplied with the device
    statistics' global mean (a cross-device error on a GPU)."""
    monkeypatch.setattr(second_pass, "prepare", lambda stats, **kw: _fake_prepared())
    # the classifier's finiteness check reads a value (a sync by design, once per pass): not here
    monkeypatch.setattr(second_pass, "check_classifier", lambda *a: None)
    w, b = torch.randn(K, D), torch.randn(K)  # CPU weights, as a user might pass them
    with FakeTensorMode(allow_non_fake_inputs=True):
        st = FeatureStats(K, D, device="cuda")
        sp = SecondPass(st, w, b)
        x = torch.randn(N, D, device="cuda")
        y = torch.randint(0, K, (N,), device="cuda")
        sp.update(x, y, validate=False)
        assert sp.resid.device.type == "cuda"


def test_nc_metrics_device_terms_on_fake_cuda():
    """The tensor part of nc_metrics (every metric before the one transfer to the host) on fake cuda,
    with the classifier given on the CPU as a user might: it moves to the statistics' device."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        st = FeatureStats(K, D, device="cuda")
        st.update(torch.randn(N, D, device="cuda"), torch.randint(0, K, (N,), device="cuda"), validate=False)
        p = _fake_prepared()
        w = torch.randn(K, D)  # CPU weights
        b = torch.randn(K)
        terms = functional._device_terms(st, p, w, b)
        assert terms and all(t.device.type == "cuda" for t in terms.values())


def test_neural_collapse_metric_on_fake_cuda_states():
    """The metric's states as ``.to("cuda")`` leaves them (fake mode cannot move a tensor with .to, so
    the states are made on the device directly): update stays there without synchronising."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        m = NeuralCollapse(K, D, validate=False)
        for name in ("counts", "sums", "sq_norms", "second"):
            old = getattr(m, name)
            setattr(m, name, torch.zeros(old.shape, dtype=old.dtype, device="cuda"))
        m.update(torch.randn(N, D, device="cuda"), torch.randint(0, K, (N,), device="cuda"))
        assert m.second.device.type == "cuda" and m.counts.device.type == "cuda"


def test_validate_false_still_checks_shapes():
    st = FeatureStats(K, D)
    with pytest.raises(Exception, match="labels"):
        st.update(torch.randn(4, D), torch.zeros(3, dtype=torch.long), validate=False)
    with pytest.raises(Exception, match="dimension"):
        st.update(torch.randn(4, D + 1), torch.zeros(4, dtype=torch.long), validate=False)


SYNCS = ("item", "__bool__", "__int__", "__float__", "__index__", "tolist", "cpu", "nonzero", "numpy")


def _count_syncs(monkeypatch) -> dict[str, int]:
    """Count calls of the Tensor methods that read values on the host (CPU-side counters)."""
    seen: dict[str, int] = {}
    for name in SYNCS:
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=orig, _name=name, **k):
            seen[_name] = seen.get(_name, 0) + 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    orig_get = torch.Tensor.__getitem__

    def getitem(self, idx):
        items = idx if isinstance(idx, tuple) else (idx,)
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items):
            seen["bool-mask index"] = seen.get("bool-mask index", 0) + 1
        return orig_get(self, idx)

    monkeypatch.setattr(torch.Tensor, "__getitem__", getitem)
    return seen


def test_updates_make_no_host_sync_without_validation(monkeypatch):
    """issue 21: FeatureStats.update made 13 host reads per call (9 boolean-mask indexings, 2 bool, 2 int),
    SecondPass.update 6 (incl. a .cpu() of the batch); with validate=False both make none."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(N, D, generator=g), torch.randint(0, K, (N,), generator=g)
    w, b = torch.randn(K, D, generator=g), torch.randn(K, generator=g)
    st = FeatureStats(K, D)
    st.update(x, y)
    sp = SecondPass(st, w, b)
    m = NeuralCollapse(K, D, validate=False)
    seen = _count_syncs(monkeypatch)
    st.update(x, y, validate=False)
    st.update(x.narrow(0, 0, 3), y.narrow(0, 0, 3), validate=False)
    sp.update(x, y, validate=False)
    m.update(x, y)
    assert seen == {}
    st.update(x, y)  # the default validates: finiteness and label range, 3 reads
    assert sum(seen.values()) == 3
