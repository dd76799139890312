"""Shared fixtures of the RL tests."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def spread_cont():
    mpe2 = pytest.importorskip("mpe2")
    from mpe2 import simple_spread_v3

    del mpe2
    return lambda: simple_spread_v3.parallel_env(N=3, continuous_actions=True, max_cycles=25)


@pytest.fixture
def spread_disc():
    pytest.importorskip("mpe2")
    from mpe2 import simple_spread_v3

    return lambda: simple_spread_v3.parallel_env(N=3, continuous_actions=False, max_cycles=25)


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
