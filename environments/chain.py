"""Umbrella Chain (bsuite `UmbrellaChain`): a binary choice whose outcome is paid L steps later.

The first action decides `has`; only the last step's reward (+1 if has == need, else -1) depends
on it, and every earlier step pays ±1 noise. Observations carry `need`, `has`, the remaining time
and `n_distractor` fresh random bits.

`reveal` (a project option, see the credit spec §1.1):
  "always"      bsuite's rules: need and has are shown at every step (replays bsuite exactly);
  "first_step"  need and has are zeroed from t = 2 on, so only the observation right after the
                choice reveals it. The default for the credit-assignment claim.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from environments import core, reference
from environments.core import ArraySpec, Environment, TimeStep
from environments.registry import register

REVEAL_MODES = ("first_step", "always")


class ChainState(NamedTuple):
    t: jax.Array  # int32 [] actions taken so far
    need: jax.Array  # int32 [] 0/1
    has: jax.Array  # int32 [] 0/1 (a decoy until the first action)


class ChainDraws(NamedTuple):
    noise_reward: jax.Array  # float32 [] ±1, used on non-final steps
    distractors: jax.Array  # float32 [n] 0/1 bits of the next observation


@register
@dataclasses.dataclass(frozen=True)
class Chain(Environment):
    """Umbrella chain of length `length` with `n_distractor` noise bits."""

    length: int = 10
    n_distractor: int = 20
    reveal: str = "first_step"

    name = "chain"
    version = 1
    episode_metrics = ("chose_correctly",)
    reference = "bsuite/environments/umbrella_chain.py @ effafc0"

    def __post_init__(self):
        core.check_positive_int("length", self.length)
        core.check_positive_int("n_distractor", self.n_distractor, minimum=0)
        core.validate_choice("reveal", self.reveal, REVEAL_MODES)

    # -- specs
    def observation_spec(self) -> ArraySpec:
        return ArraySpec((3 + self.n_distractor,), jnp.float32, "observation", 0.0, 1.0)

    @property
    def num_actions(self) -> int:
        return 2

    @property
    def max_episode_steps(self) -> int:
        return self.length

    def extras_spec(self) -> dict[str, ArraySpec]:
        return {
            "chose_correctly": ArraySpec((), jnp.float32, "chose_correctly"),
            "t": ArraySpec((), jnp.int32, "t"),
        }

    # -- rules
    def _time_feature(self) -> np.ndarray:
        # float32(1 - t/L) computed in float64 as bsuite does, for every t in 0..L.
        return (1 - np.arange(self.length + 1) / self.length).astype(np.float32)

    def observe(self, state: ChainState, distractors: jax.Array) -> jax.Array:
        shown = (state.t <= 1) | (self.reveal == "always")
        need = jnp.where(shown, state.need, 0).astype(jnp.float32)
        has = jnp.where(shown, state.has, 0).astype(jnp.float32)
        time = jnp.asarray(self._time_feature())[state.t]
        return jnp.concatenate([jnp.stack([need, has, time]), distractors])  # [3 + n]

    def _extras(self, state: ChainState) -> dict[str, jax.Array]:
        return {
            "chose_correctly": (state.has == state.need).astype(jnp.float32),
            "t": state.t,
        }

    def initial_state(self, need, has) -> ChainState:
        return ChainState(jnp.int32(0), jnp.asarray(need, jnp.int32), jnp.asarray(has, jnp.int32))

    def _reset(self, key: jax.Array) -> tuple[ChainState, TimeStep]:
        k_need, k_has, k_bits = jax.random.split(key, 3)
        state = self.initial_state(jax.random.bernoulli(k_need), jax.random.bernoulli(k_has))
        bits = jax.random.bernoulli(k_bits, shape=(self.n_distractor,)).astype(jnp.float32)
        return self.reset_from(state, bits)

    def reset_from(self, state: ChainState, distractors: jax.Array) -> tuple[ChainState, TimeStep]:
        """Start an episode from a given initial state and first-observation bits."""
        return state, core.first(self.observe(state, distractors), self._extras(state))

    def sample_step_draws(self, key: jax.Array, state: ChainState) -> ChainDraws:
        k_noise, k_bits = jax.random.split(key)
        noise = jnp.where(jax.random.bernoulli(k_noise), 1.0, -1.0).astype(jnp.float32)
        bits = jax.random.bernoulli(k_bits, shape=(self.n_distractor,)).astype(jnp.float32)
        return ChainDraws(noise, bits)

    def transition(
        self, state: ChainState, action: jax.Array, draws: ChainDraws
    ) -> tuple[ChainState, TimeStep]:
        t = state.t + 1
        has = jnp.where(t == 1, jnp.asarray(action, jnp.int32), state.has)
        state = ChainState(t, state.need, has)
        done = t >= self.length
        final = jnp.where(has == state.need, 1.0, -1.0)
        reward = jnp.where(done, final, draws.noise_reward)
        obs = self.observe(state, draws.distractors)
        return state, core.transition_or_termination(obs, reward, done, self._extras(state))


@functools.partial(jax.jit, static_argnums=0)
def _transition(env: Chain, state: ChainState, action, draws: ChainDraws):
    return env.transition(state, action, draws)


@reference.register_replayer("chain")
def replay_bsuite(record: dict):
    """Replay a bsuite umbrella-chain recording (reference README §4) with injected draws."""
    env = Chain(length=record["chain_length"], n_distractor=record["n_distractor"], reveal="always")
    init = record["init"]
    state, ts = env.reset_from(
        env.initial_state(init["need_umbrella"], init["has_umbrella"]),
        jnp.asarray(init["distractors"], jnp.float32),
    )
    yield reference.check(-1, "observation", record["first_obs"], ts.observation, as_float32=True)
    yield reference.check(-1, "step_type", record.get("first_step_type", 0), ts.step_type)
    for k, s in enumerate(record["steps"]):
        noise = s["reward_noise"] if s["reward_noise"] is not None else 0.0
        draws = ChainDraws(jnp.float32(noise), jnp.asarray(s["distractors"], jnp.float32))
        state, ts = _transition(env, state, jnp.int32(s["action"]), draws)
        yield reference.check(k, "observation", s["obs"], ts.observation, as_float32=True)
        yield reference.check(k, "reward", s["reward"], ts.reward)
        yield reference.check(k, "discount", s["discount"], ts.discount)
        yield reference.check(k, "step_type", s["step_type"], ts.step_type)
