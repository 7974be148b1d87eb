import math

import pytest
import torch

from nclab.errors import ConfigError
from nclab.heads import create_head, list_heads


@pytest.mark.parametrize("name", list_heads())
def test_contract(name):
    torch.manual_seed(0)
    head = create_head(name, 12, 5)
    h = torch.randn(8, 12, requires_grad=True)
    out = head(h)
    assert out.shape == (8, 5) and torch.isfinite(out).all()
    assert head.weight.shape == (5, 12)
    out.sum().backward()
    assert h.grad is not None
    for n, p in head.named_parameters():
        assert p.grad is not None, n
    assert isinstance(head.diagnostics(), dict)


def test_fixed_etf_is_a_buffer_with_etf_geometry():
    head = create_head("fixed_etf", 10, 4, bias=True)
    names = [n for n, _ in head.named_parameters()]
    assert names == ["bias"] and "weight" in dict(head.named_buffers())
    w = head.weight.double()
    g = w @ w.T
    assert torch.allclose(g.diagonal(), torch.ones(4, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(g[0, 1:], torch.full((3,), -1 / 3, dtype=torch.float64), atol=1e-6)
    with pytest.raises(ConfigError, match="d >= K-1"):
        create_head("fixed_etf", 2, 5)


def test_nearest_etf_head_tracks_means():
    torch.manual_seed(0)
    head = create_head("nearest_etf", 6, 3, tau=5.0)
    centres = torch.randn(3, 6) * 3
    y = torch.tensor([0, 1, 2] * 10)
    for _ in range(20):
        head.update_means(centres[y] + 0.01 * torch.randn(30, 6), y)
    w = head.weight
    mt = centres - centres.mean(0)
    cos = torch.nn.functional.cosine_similarity(w, mt, dim=1)
    assert (cos > 0.8).all()
    assert torch.allclose(w.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose((w @ w.T)[0, 1:], torch.full((2,), -0.5), atol=1e-5)
    with pytest.raises(ConfigError):
        create_head("nearest_etf", 2, 3)


def test_cosine_head_scale():
    head = create_head("cosine", 4, 3, tau=2.0)
    out = head(torch.randn(5, 4))
    assert out.abs().max() <= 2.0 + 1e-6
    assert math.isclose(head.tau, 2.0)


@pytest.mark.parametrize("name", list_heads())
def test_unknown_head_option_raises_and_factory_defaults_match_the_class(name):
    import inspect

    from nclab.errors import RegistryError
    from nclab.heads import HEADS

    with pytest.raises(RegistryError, match=f"unknown head option 'nope' for {name}; accepted: "):
        create_head(name, 12, 5, nope=1)
    factory = inspect.signature(HEADS.get(name)).parameters
    head_cls = type(create_head(name, 12, 5))
    init = inspect.signature(head_cls.__init__).parameters
    options = {k: p.default for k, p in factory.items() if p.kind is p.KEYWORD_ONLY}
    # the factory forwards every keyword-only option of the class, with the same defaults
    assert {k for k, p in init.items() if p.kind is p.KEYWORD_ONLY} <= set(options), name
    assert options == {k: init[k].default for k in options}, name
