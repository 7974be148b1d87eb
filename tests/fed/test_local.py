"""Client-side work (fed/local.py): the exchanged state, local training, prediction, angle collapse."""

import pytest
import torch

from nclab.fed.config import LocalConfig
from nclab.fed.local import (
    batches,
    load_shared_state,
    local_train,
    missing_class_cosine,
    predict,
    shared_keys,
    shared_state,
)
from nclab.heads import create_head
from nclab.heads.gela import gela_scales
from nclab.models import Network, create_model


def test_gela_local_training_touches_no_classifier_state_and_sends_none():
    k, d = 4, 6
    backbone = torch.nn.Sequential(torch.nn.Linear(3, d), torch.nn.ReLU())
    net = Network(backbone, create_head("gela", d, k))
    net.head.set_scales(gela_scales([5, 5, 0, 0]))
    before = {k_: v.clone() for k_, v in net.head.state_dict().items()}
    x, y = torch.randn(20, 3), torch.tensor([0, 1] * 10)
    w0 = backbone[0].weight.clone()
    local_train(net, x, y, LocalConfig(epochs=2, batch_size=8), generator=torch.Generator().manual_seed(0))
    for k_, v in net.head.state_dict().items():
        assert torch.equal(v, before[k_])
    assert not torch.equal(backbone[0].weight, w0)
    assert shared_keys(net) == ["model.0.weight", "model.0.bias"]


def test_shared_state_is_the_backbone_state_and_the_head_parameters():
    net = Network(
        create_model("cnn_small", inputs={"in_channels": 1}, feature_dim=8), create_head("linear", 8, 3)
    )
    keys = shared_keys(net)
    assert keys[-2:] == ["head.weight", "head.bias"] and any("running_mean" in k for k in keys)
    other = Network(
        create_model("cnn_small", inputs={"in_channels": 1}, feature_dim=8), create_head("linear", 8, 3)
    )
    load_shared_state(other, shared_state(net))
    assert all(torch.equal(a, b) for a, b in zip(shared_state(net), shared_state(other)))
    with pytest.raises(ValueError, match="shared tensors"):
        load_shared_state(other, shared_state(net)[:-1])


def test_fedprox_pulls_towards_the_received_weights():
    """(mu/2) ||w - w_global||^2 (Li et al. 2020): a large mu keeps the local weights closer."""

    def moved(mu):
        torch.manual_seed(0)
        net = Network(torch.nn.Linear(3, 4), create_head("linear", 4, 2))
        w0 = [p.detach().clone() for p in net.parameters()]
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(32, 3, generator=g), torch.randint(0, 2, (32,), generator=g)
        local_train(net, x, y, LocalConfig(epochs=3, batch_size=8), generator=g, prox_mu=mu)
        return sum(float(((p.detach() - q) ** 2).sum()) for p, q in zip(net.parameters(), w0))

    assert moved(10.0) < moved(0.0)


def test_fedprox_steps_match_a_float64_hand_computation():
    """Two full-batch SGD steps on (mean CE) + (mu/2) ||w - w_global||^2 (Li et al., MLSys 2020, eq. 2)
    against numpy in float64 with the gradients written out: the proximal term is 0 at the first step
    (w = w_global) and adds mu (w1 - w_global) to the second."""
    import numpy as np

    torch.manual_seed(0)
    net = Network(torch.nn.Linear(3, 4), create_head("linear", 4, 2)).double()
    w = {n: p.detach().numpy().copy() for n, p in net.named_parameters()}
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1, 0])
    xn, onehot = x.numpy(), np.eye(2)[y.numpy()]
    lr, mu = 0.3, 2.0

    def forward(v):
        f = xn @ v["model.weight"].T + v["model.bias"]
        return f, f @ v["head.weight"].T + v["head.bias"]

    assert np.allclose(forward(w)[1], net(x)[1].detach().numpy())

    def grads(v):  # d(mean CE)/dv, by hand
        f, z = forward(v)
        p = np.exp(z - z.max(1, keepdims=True))
        dz = (p / p.sum(1, keepdims=True) - onehot) / len(xn)
        df = dz @ v["head.weight"]
        return {"head.weight": dz.T @ f, "head.bias": dz.sum(0), "model.weight": df.T @ xn, "model.bias": df.sum(0)}

    v = dict(w)
    for _ in range(2):
        gv = grads(v)
        v = {n: v[n] - lr * (gv[n] + mu * (v[n] - w[n])) for n in v}
    cfg = LocalConfig(epochs=2, batch_size=6, lr=lr, momentum=0.0, weight_decay=0.0)
    local_train(net, x, y, cfg, generator=torch.Generator().manual_seed(2), prox_mu=mu)
    for n, p in net.named_parameters():
        np.testing.assert_allclose(p.detach().numpy(), v[n], rtol=1e-10, atol=1e-12)


def test_missing_class_cosine():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    assert missing_class_cosine(w, [3, 3, 0, 0]) == pytest.approx(1.0)
    assert missing_class_cosine(w, [0, 0, 1, 1]) == pytest.approx(0.0)
    assert missing_class_cosine(w, [1, 1, 1, 0]) is None


def test_local_training_on_images_matches_contiguous_layout_and_sends_contiguous_tensors():
    """Image batches train in channels_last; the result equals the plain layout to rounding, and the
    shared state leaves contiguous (what Flower serialises and the server averages)."""

    def build():
        torch.manual_seed(0)
        backbone = create_model("cnn_small", inputs={"in_channels": 1}, feature_dim=8)
        return Network(backbone, torch.nn.Linear(8, 3))

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 1, 28, 28, generator=g), torch.randint(0, 3, (24,), generator=g)
    fast = build()
    local_train(fast, x, y, LocalConfig(batch_size=8), generator=torch.Generator().manual_seed(0))
    assert fast.model.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    state = shared_state(fast)
    assert all(t.is_contiguous() for t in state)
    # the reference: the same steps by hand in the default layout
    ref = build()
    params = [p for p in ref.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    ref.train()
    order = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    for s in range(0, 24, 8):
        idx = order[s : s + 8]
        loss = torch.nn.functional.cross_entropy(ref.head(ref.model(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(state, shared_state(ref)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    feats, logits = predict(fast, x)
    ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(feats, ref.model(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logits, ref.head(ref.model(x)), rtol=1e-4, atol=1e-5)


def test_gradient_norm_clipping_matches_one_step_by_hand():
    """grad_clip: one full-batch SGD step with g * min(1, c / ||g||) (the global norm over all params)."""

    def build():
        torch.manual_seed(0)
        return Network(torch.nn.Linear(3, 4), create_head("linear", 4, 3))

    g = torch.Generator().manual_seed(2)
    x, y = 10 * torch.randn(16, 3, generator=g), torch.randint(0, 3, (16,), generator=g)
    ref = build()
    loss = torch.nn.functional.cross_entropy(ref(x)[1], y)
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    norm = torch.sqrt(sum((gr.double() ** 2).sum() for gr in grads))
    clip = 0.5
    assert norm > clip  # the clip acts
    expect = [p.detach() - 0.1 * gr * (clip / norm) for p, gr in zip(ref.parameters(), grads)]
    net = build()
    cfg = LocalConfig(epochs=1, batch_size=16, lr=0.1, momentum=0.0, weight_decay=0.0, grad_clip=clip)
    local_train(net, x, y, cfg, generator=torch.Generator().manual_seed(0))
    for p, e in zip(net.parameters(), expect):
        torch.testing.assert_close(p.detach(), e.float(), rtol=1e-5, atol=1e-6)
    unclipped = build()
    local_train(
        unclipped,
        x,
        y,
        LocalConfig(epochs=1, batch_size=16, lr=0.1, momentum=0.0, weight_decay=0.0),
        generator=torch.Generator().manual_seed(0),
    )
    assert not torch.allclose(unclipped.head.weight, net.head.weight)


@pytest.mark.parametrize("drop_last,steps", [(False, 3), (True, 2)])
def test_drop_last_skips_the_incomplete_batch(drop_last, steps):
    """20 samples in batches of 8: 8 + 8 + 4, the 4 dropped with drop_last; batches() counts the same."""
    net = Network(torch.nn.Linear(3, 4), create_head("linear", 4, 2))
    seen = []
    net.model.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    x, y = torch.randn(20, 3), torch.tensor([0, 1] * 10)
    cfg = LocalConfig(epochs=2, batch_size=8, drop_last=drop_last)
    local_train(net, x, y, cfg, generator=torch.Generator().manual_seed(0))
    assert seen == ([8, 8] if drop_last else [8, 8, 4]) * 2
    assert len(batches(torch.arange(20), cfg)) == steps
    assert [len(b) for b in batches(torch.arange(17), LocalConfig(batch_size=8))] == [8, 8]  # 1-sample tail
    assert batches(torch.arange(7), LocalConfig(batch_size=8, drop_last=True)) == []


def test_a_client_smaller_than_a_batch_with_drop_last_trains_nothing_and_reports_no_loss():
    """7 samples, batch 8, drop_last: no step (as FedGELA's code), weights unchanged, loss NaN (not 0) so the
    server's mean over clients (fed/train_loss) leaves the client out."""
    torch.manual_seed(0)
    net = Network(torch.nn.Linear(3, 4), create_head("linear", 4, 2))
    before = [p.detach().clone() for p in net.parameters()]
    x, y = torch.randn(7, 3), torch.tensor([0, 1, 0, 1, 0, 1, 0])
    loss = local_train(net, x, y, LocalConfig(batch_size=8, drop_last=True), generator=torch.Generator())
    assert loss != loss  # NaN
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_authors_head_sends_its_parameters_and_batchnorm_statistics_but_not_the_etf():
    """gela_authors: every parameter trains locally; the projection, the BatchNorm's affine parameters
    and running statistics travel, the ETF and the client's scales stay local."""
    k, d = 4, 6
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(3, d), torch.nn.ReLU())
    net = Network(backbone, create_head("gela_authors", d, k, p=5))
    keys = shared_keys(net)
    assert keys == [
        "model.0.weight", "model.0.bias",
        "head.projection.0.weight", "head.projection.0.bias", "head.projection.2.weight",
        "head.projection.2.bias", "head.bn.weight", "head.bn.bias",
        "head.bn.running_mean", "head.bn.running_var", "head.bn.num_batches_tracked",
    ]  # fmt: skip
    net.head.set_scales(gela_scales([5, 5, 0, 0]))
    before = {n: t.clone() for n, t in net.state_dict().items()}
    x, y = torch.randn(20, 3), torch.tensor([0, 1] * 10)
    local_train(net, x, y, LocalConfig(epochs=1, batch_size=8), generator=torch.Generator().manual_seed(0))
    after = net.state_dict()
    assert all(not torch.equal(after[n], before[n]) for n in keys)  # all trained, statistics updated
    assert torch.equal(after["head.etf"], before["head.etf"]) and torch.equal(
        after["head.phi"], before["head.phi"]
    )
    other = Network(
        torch.nn.Sequential(torch.nn.Linear(3, d), torch.nn.ReLU()), create_head("gela_authors", d, k, p=5)
    )
    load_shared_state(other, shared_state(net))
    assert all(torch.equal(a, b) for a, b in zip(shared_state(net), shared_state(other)))
    assert torch.equal(other.head.phi, torch.ones(k))  # the receiver keeps its own scales
    feats, logits = predict(other, x)  # the features the ETF sees: the BatchNorm'd projection
    other.eval()
    with torch.no_grad():
        z = other.head.project(other.model(x))
    torch.testing.assert_close(feats, z)
    torch.testing.assert_close(logits, z @ other.head.etf.T / 0.2)
