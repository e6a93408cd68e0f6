"""Released episodes of the ideal observer over worker processes (`io_episodes`): the same
results as in this process, per trial, and option checks."""

from __future__ import annotations

import pytest

from baselines.alchemy import io_episodes


def test_workers_play_the_same_episodes_as_this_process():
    here = io_episodes.play_released([3, 1], workers=1, potions_per_trial=3)
    spread = io_episodes.play_released([3, 1], workers=2, potions_per_trial=3)
    assert [r.episode for r in spread] == [3, 1]
    strip = [(r.episode, r.trial_returns, r.trial_nodes) for r in here]
    assert [(r.episode, r.trial_returns, r.trial_nodes) for r in spread] == strip
    assert all(len(r.trial_seconds) == 10 and min(r.trial_seconds) > 0 for r in here)
    assert sum(sum(r.trial_nodes) for r in here) > 0


def test_bad_workers_raise():
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        io_episodes.play_released([0], workers=0)
