"""The environment registry, specs and the Gymnasium adapter."""

import numpy as np
import pytest

import environments
from environments.gym_adapter import GymnasiumAdapter


def test_versioned_ids_resolve():
    assert "chain-v1" in environments.ids()
    assert environments.lookup("chain") is environments.lookup("chain-v1")
    assert environments.make("chain-v1", length=3).id == "chain-v1"


@pytest.mark.parametrize("name", ["nosuch", "chain-v9"])
def test_unknown_environment_names_list_the_accepted_ones(name):
    with pytest.raises(ValueError, match="accepted: .*chain"):
        environments.make(name)


def test_every_registered_environment_declares_specs():
    for name in environments.names():
        env = environments.make(name)
        specs = env.specs()
        assert specs.action.num_values >= 2
        assert set(specs.episode_metrics) <= set(specs.extras), name


def test_gymnasium_adapter_runs_an_episode_and_separates_termination():
    env = GymnasiumAdapter("chain", length=3)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["t"] == 0
    done, steps, rewards = False, 0, []
    while not done:
        obs, reward, terminated, truncated, info = env.step(1)
        rewards.append(reward)
        steps += 1
        done = terminated or truncated
    assert steps == 3 and terminated and not truncated and rewards[-1] in (-1.0, 1.0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    obs2, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, obs) and np.testing.assert_array_equal(
        obs2, env.reset(seed=0)[0]
    )
    with pytest.raises(ValueError, match="outside"):
        env.step(5)
