import pytest

from nclab.data import profiles
from nclab.errors import NclabError


def test_exponential_matches_ldam_rule_sizes():
    # papers.md section 9: CIFAR-10-LT and CIFAR-100-LT at IF=100 have 12,406 and 10,847 images.
    assert sum(profiles.exponential(5000, 10, 100)) == 12406
    assert sum(profiles.exponential(500, 100, 100)) == 10847
    c = profiles.exponential(5000, 10, 100)
    assert c[0] == 5000 and c[-1] == 50 and c == sorted(c, reverse=True)


def test_step_profile():
    assert profiles.step(500, 10, 10, 0.5) == [500] * 5 + [50] * 5
    assert profiles.step(100, 4, 1.0, 0.25) == [100] * 4


def test_parse_counts():
    assert profiles.parse_counts("500x5,100x5") == [500] * 5 + [100] * 5
    assert profiles.parse_counts("3, 2,1") == [3, 2, 1]


@pytest.mark.parametrize(
    "call",
    [
        lambda: profiles.exponential(0, 10, 10),
        lambda: profiles.exponential(100, 10, 0.5),
        lambda: profiles.exponential(10, 10, 1000),
        lambda: profiles.given([3, 0, 2]),
        lambda: profiles.given([3, -1]),
        lambda: profiles.given([]),
        lambda: profiles.parse_counts("5xx"),
        lambda: profiles.step(100, 4, 10, 1.5),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(NclabError):
        call()
