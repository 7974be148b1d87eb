"""Independent references for the data tests."""

import numpy as np


def ldam_reference(targets, counts, seed):
    """The LDAM-DRW code's rule, written with numpy's *global* seed as that code does."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        kept = []
        for c, n in enumerate(counts):
            idx = np.where(np.asarray(targets) == c)[0]
            np.random.shuffle(idx)
            kept.extend(idx[:n].tolist())
        return np.array(kept)
    finally:
        np.random.set_state(state)
