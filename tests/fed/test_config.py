from pathlib import Path

import pytest

from nclab.errors import ConfigError
from nclab.fed.config import load_fed_config

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "fed" / "synthetic_smoke.yaml"


def test_every_fed_config_loads():
    for p in sorted(SMOKE.parent.glob("*.yaml")):
        cfg = load_fed_config(p)
        assert cfg.rounds >= 1 and cfg.clients_per_round <= cfg.partition.num_clients


@pytest.mark.parametrize(
    "override,msg",
    [
        ("method=fedsgd", "method"),
        ("partition.kind=iid", "partition.kind"),
        ("clients_per_round=5", "clients_per_round"),
        ("rounds=0", "rounds"),
        ("round=3", "Valid keys"),
        ("lr=fast", "Valid keys"),
    ],
)
def test_bad_fed_config(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_fed_config(SMOKE, [override])
