"""Hook states in a checkpoint (nclab.train.hook_state): keyed by hook name, a different set of hooks is
an error naming both, and checkpoints from before the built-in hooks still resume."""

import pytest

from nclab.errors import NclabError
from nclab.rundir import RunDir


class _Counter:
    def __init__(self, n=0):
        self.n = n

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


class _Other(_Counter):
    pass


def test_hook_states_are_keyed_by_name_and_a_different_set_is_an_error(tmp_path):
    from nclab.train.hook_state import hook_names, hook_states, restore_hooks

    hooks = [_Counter(1), _Other(2), _Counter(3)]
    assert hook_names(hooks) == ["_Counter#0", "_Other", "_Counter#1"]
    run = RunDir(tmp_path)
    run.save_checkpoint({"hooks": hook_states(hooks)})
    fresh = [_Counter(), _Other(), _Counter()]
    restore_hooks(fresh, run.load_checkpoint(), run.path)
    assert [h.n for h in fresh] == [1, 2, 3]
    with pytest.raises(
        NclabError, match=r"hooks \['_Counter#0', '_Counter#1', '_Other'\] differ .* \['_Other'\]"
    ):
        restore_hooks([_Other()], run.load_checkpoint(), run.path)


def test_hook_states_of_a_checkpoint_from_before_the_builtin_hooks(tmp_path):
    """Earlier checkpoints held the other hooks' states as a list, and the online statistics beside."""
    import torch

    from nclab.train import builtin_hooks as bh
    from nclab.train.hook_state import restore_hooks

    online = bh.OnlineNC(2, 3, torch.device("cpu"))
    saved = bh.OnlineNC(2, 3, torch.device("cpu"))
    saved.on_batch(torch.eye(2, 3), torch.tensor([0, 1]), type("Ctx", (), {"loss": torch.tensor(0.5)})())
    old = {"hooks": [{"n": 7}], "online_stats": saved.state_dict()["stats"], "online_loss": 0.5}
    hooks = [online, _Counter()]
    restore_hooks(hooks, old, tmp_path)
    assert hooks[1].n == 7 and online.state_dict()["loss"] == pytest.approx(0.5)
    restored, expected = online.state_dict()["stats"], saved.state_dict()["stats"]
    assert all(torch.equal(torch.as_tensor(restored[k]), torch.as_tensor(expected[k])) for k in expected)
