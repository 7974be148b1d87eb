import torch
from torch import nn

from nclab.losses import posthoc_logit_adjust
from nclab.train.two_stage import (
    crt,
    lws,
    search_tau,
    tau_normalize,
    validation_split,
    weight_balancing_stage2,
)

COUNTS = [200, 60, 12]


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.repeat_interleave(torch.arange(3), torch.tensor(COUNTS))
    centres = torch.randn(3, 8, generator=g) * 2
    return centres[y] + torch.randn(len(y), 8, generator=g), y


def test_validation_split_per_class_and_seeded():
    _, y = _features()
    tr, va = validation_split(y, 0.1, seed=1)
    assert len(set(tr.tolist()) & set(va.tolist())) == 0 and len(tr) + len(va) == len(y)
    assert torch.bincount(y[va]).tolist() == [20, 6, 1]
    assert torch.equal(va, validation_split(y, 0.1, seed=1)[1])


def test_crt_changes_only_the_head_and_balances_predictions():
    feats, y = _features()
    backbone = nn.Linear(8, 8)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    head = crt(lambda: nn.Linear(8, 3), feats, y, COUNTS, epochs=5, lr=0.1)
    assert all(torch.equal(v, before[k]) for k, v in backbone.state_dict().items())
    pred = head(feats).argmax(1)
    assert (pred[y == 2] == 2).float().mean() > 0.5


def test_tau_norm_and_posthoc_la_change_only_predictions():
    feats, y = _features()
    head = nn.Linear(8, 3)
    w = head.weight.detach().clone()
    tn = tau_normalize(w, 1.0)
    assert torch.allclose(tn.norm(dim=1), torch.ones(3))
    assert torch.equal(head.weight.detach(), w)  # the model is untouched
    tau, acc = search_tau(w, head.bias.detach(), feats, y)
    assert 0.0 <= tau <= 2.0 and 0.0 <= acc <= 1.0
    logits = head(feats).detach()
    adj = posthoc_logit_adjust(logits, COUNTS, 1.0)
    assert torch.allclose(
        adj - logits, -torch.log(torch.tensor(COUNTS, dtype=torch.float) / sum(COUNTS)).expand_as(logits)
    )


def test_lws_trains_only_scales_and_wb_respects_max_norm():
    feats, y = _features()
    head = nn.Linear(8, 3)
    scaled = lws(head, feats, y, COUNTS, epochs=2)
    assert [n for n, p in scaled.named_parameters()] == ["scale"]
    assert torch.equal(scaled.weight, head.weight.detach())
    wb = weight_balancing_stage2(nn.Linear(8, 3), feats, y, COUNTS, max_norm=0.5, epochs=2)
    assert (wb.weight.norm(dim=1) <= 0.5 + 1e-6).all()


def test_stage2_registry_matches_the_config_schema():
    from nclab.errors import ConfigError
    from nclab.train.config import load_config
    from nclab.train.two_stage import METHODS

    assert set(METHODS) == {"crt", "tau_norm", "lws", "wb"}
    for m in METHODS:
        assert load_config(None, [f"stage2.method={m}"]).stage2.method == m
    import pytest

    with pytest.raises(ConfigError, match="stage2.method"):
        load_config(None, ["stage2.method=lsw"])
