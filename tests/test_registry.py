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
    first = obs.copy()
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
    np.testing.assert_array_equal(env.reset(seed=0)[0], first)  # same seed, same start
    assert not np.array_equal(env.reset(seed=1)[0], first)  # 20 random distractor bits differ
    with pytest.raises(ValueError, match="outside"):
        env.step(5)


def test_near_miss_option_values_and_names_suggest_the_closest():
    with pytest.raises(ValueError, match="unknown reveal 'first_stp'.*did you mean 'first_step'"):
        environments.make("chain", length=3, reveal="first_stp")
    with pytest.raises(ValueError, match="unknown environment 'delayed_cach'.*'delayed_catch'"):
        environments.make("delayed_cach")
    with pytest.raises(ValueError, match="unknown reveal 'zzz'; accepted: [^;]*$"):
        environments.make("chain", length=3, reveal="zzz")  # nothing close: no suggestion
