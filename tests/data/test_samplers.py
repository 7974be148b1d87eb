import pytest
import torch

from nclab.data.samplers import create_sampler
from nclab.errors import RegistryError

COUNTS = [800, 200, 50, 10]
LABELS = torch.repeat_interleave(torch.arange(4), torch.tensor(COUNTS))


def _freq(idx):
    return (torch.bincount(LABELS[idx], minlength=4).double() / len(idx)).tolist()


def test_instance_is_a_permutation_and_deterministic():
    s = create_sampler("instance", LABELS, COUNTS, seed=3)
    a = s.indices(0)
    assert sorted(a.tolist()) == list(range(len(LABELS)))
    assert torch.equal(a, create_sampler("instance", LABELS, COUNTS, seed=3).indices(0))
    assert not torch.equal(a, s.indices(1))


@pytest.mark.parametrize(
    "name,params,expect",
    [
        ("class_balanced", {}, [0.25] * 4),
        ("square_root", {}, [c**0.5 / sum(x**0.5 for x in COUNTS) for c in COUNTS]),
    ],
)
def test_empirical_class_frequencies(name, params, expect):
    s = create_sampler(name, LABELS, COUNTS, seed=0, **params)
    idx = torch.cat([s.indices(e) for e in range(5)])
    assert _freq(idx) == pytest.approx(expect, abs=0.02)


def test_progressive_and_deferred_schedules():
    n = sum(COUNTS)
    prog = create_sampler("progressive", LABELS, COUNTS, epochs=3)
    assert _freq(prog.indices(0)) == pytest.approx(
        [c / n for c in COUNTS], abs=0.03
    )  # epoch 0 = instance-level
    assert _freq(torch.cat([prog.indices(2)] * 1)) == pytest.approx([0.25] * 4, abs=0.03)
    drs = create_sampler("drs", LABELS, COUNTS, start_epoch=2)
    assert sorted(drs.indices(1).tolist()) == list(range(n))
    assert _freq(drs.indices(2)) == pytest.approx([0.25] * 4, abs=0.03)


def test_unknown_sampler():
    with pytest.raises(RegistryError, match="class_balanced"):
        create_sampler("balanced", LABELS, COUNTS)


def test_unknown_sampler_option_names_the_accepted_ones():
    with pytest.raises(
        RegistryError, match=r"sampler option 'start_epch' for drs; accepted: seed, start_epoch\."
    ):
        create_sampler("drs", LABELS, COUNTS, start_epch=2)
    with pytest.raises(RegistryError, match="sampler option 'epochs' for drs"):
        create_sampler("drs", LABELS, COUNTS, epochs=4)  # only progressive has an epoch count
    with pytest.raises(RegistryError, match="sampler option 'epochs' for class_balanced; accepted: seed"):
        create_sampler("class_balanced", LABELS, COUNTS, epochs=4)
