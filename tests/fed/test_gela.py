import numpy as np
import pytest
import torch

from nclab.errors import NclabError
from nclab.fed.apps import weighted_average
from nclab.fed.gela import ETFHead, gela_scales
from nclab.fed.local import FedModel, LocalConfig, local_train, missing_class_cosine


def _etf(k, d, seed=0):
    # independent construction: sqrt(K/(K-1)) * (I - 11^T/K) P^T with orthonormal P (d x K)
    g = torch.Generator().manual_seed(seed)
    p, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
    c = torch.eye(k, dtype=torch.float64) - 1.0 / k
    return (np.sqrt(k / (k - 1)) * c @ p.T).float()


def test_local_head_equals_etf_scaled_by_label_frequency():
    k, d = 5, 8
    etf = _etf(k, d)
    counts = [6, 3, 0, 1, 0]
    head = ETFHead(etf, tau=2.0)
    head.set_scales(gela_scales(counts, c=4.0))
    phi = torch.tensor([4.0 * n / 10 for n in counts])
    torch.testing.assert_close(head.weight, torch.diag(phi) @ etf)
    h = torch.randn(7, d)
    expect = 2.0 * (h / h.norm(dim=1, keepdim=True)) @ (torch.diag(phi) @ etf).T
    torch.testing.assert_close(head(h), expect)
    assert torch.all(head(h)[:, [2, 4]] == 0)  # missing classes: logit 0
    assert gela_scales(counts).tolist() == pytest.approx([3.0, 1.5, 0.0, 0.5, 0.0])  # C = K default


def test_gela_local_training_touches_no_classifier_parameter():
    k, d = 4, 6
    backbone = torch.nn.Sequential(torch.nn.Linear(3, d), torch.nn.ReLU())
    model = FedModel(backbone, ETFHead(_etf(k, d)))
    model.head.set_scales(gela_scales([5, 5, 0, 0]))
    assert list(model.head.parameters()) == []
    before = {k_: v.clone() for k_, v in model.head.state_dict().items()}
    x, y = torch.randn(20, 3), torch.tensor([0, 1] * 10)
    w0 = backbone[0].weight.clone()
    local_train(model, x, y, LocalConfig(epochs=2, batch_size=8), generator=torch.Generator().manual_seed(0))
    for k_, v in model.head.state_dict().items():
        assert torch.equal(v, before[k_])
    assert not torch.equal(backbone[0].weight, w0)
    assert all(not key.startswith("head.") for key in model.shared_keys())


def test_weighted_average_uses_sample_counts():
    a = [np.array([1.0, 2.0]), np.array([[0.0]])]
    b = [np.array([3.0, 6.0]), np.array([[4.0]])]
    out = weighted_average([(a, 1), (b, 3)])
    np.testing.assert_allclose(out[0], [2.5, 5.0])
    np.testing.assert_allclose(out[1], [[3.0]])


def test_missing_class_cosine():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    assert missing_class_cosine(w, [3, 3, 0, 0]) == pytest.approx(1.0)
    assert missing_class_cosine(w, [0, 0, 1, 1]) == pytest.approx(0.0)
    assert missing_class_cosine(w, [1, 1, 1, 0]) is None


def test_bad_scales():
    with pytest.raises(NclabError):
        gela_scales([0, 0])
    with pytest.raises(NclabError):
        gela_scales([1, 2], c=0)


def test_local_training_on_images_matches_contiguous_layout_and_sends_contiguous_tensors():
    """Image batches train in channels_last; the result equals the plain layout to rounding, and the
    shared state leaves contiguous (what Flower serialises and the server averages)."""
    from nclab.fed.local import predict
    from nclab.models import create_model

    def build():
        torch.manual_seed(0)
        return FedModel(create_model("cnn_small", in_channels=1, feature_dim=8), torch.nn.Linear(8, 3))

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 1, 28, 28, generator=g), torch.randint(0, 3, (24,), generator=g)
    fast = build()
    local_train(fast, x, y, LocalConfig(batch_size=8), generator=torch.Generator().manual_seed(0))
    assert fast.backbone.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    state = fast.shared_state()
    assert all(t.is_contiguous() for t in state)
    # the reference: the same steps by hand in the default layout
    ref = build()
    params = [p for p in ref.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    ref.train()
    order = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    for s in range(0, 24, 8):
        idx = order[s : s + 8]
        loss = torch.nn.functional.cross_entropy(ref(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(state, ref.shared_state()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    feats, _ = predict(fast, x)
    ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(feats, ref.backbone(x), rtol=1e-4, atol=1e-5)
