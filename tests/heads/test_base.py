"""The head contract of every registered head (heads/__init__.py registry): shapes, gradients,
diagnostics, strict options."""

import pytest
import torch

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
