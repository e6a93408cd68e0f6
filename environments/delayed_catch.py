"""Delayed Catch (Ni et al. Memory-RL `DelayedCatch`, registered `Catch-{runs}-v0`).

`runs` games of 7×7 Catch are played back to back in one episode, and the only reward is paid on
the episode's final step: the number of fruit caught over all games. The credit for a catch is
therefore delayed by up to 7·runs − 1 steps (credit spec §1.2).

One game: the fruit starts in row 0 (column ~ U{0..5}) and the basket in row 6 (column ~
U{1..4}); the starts of every game are drawn at reset. Each step the basket moves (0 = left,
1 = stay, 2 = right, clipped to the board) and then the fruit falls one row. After 6 steps the
fruit reaches row 6 and is caught iff it is in the basket's column. The step after a landing
ignores its action and starts the next game ("soft reset", reward 0); the last game has none, so
an episode lasts exactly 7·runs − 1 steps and terminates on its last one.

Observation: the 7×7 canvas flattened row-major, float32: 0 background, −1 fruit, +1 basket (the
basket is drawn last, so a caught fruit shows only +1).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from environments import core
from environments.core import ArraySpec, Environment, TimeStep
from environments.registry import register

GRID = 7  # rows = cols of the canvas
GAME_STEPS = GRID - 1  # moves until the fruit lands in the basket row


class CatchState(NamedTuple):
    t: jax.Array  # int32 [] actions taken in the episode
    game_index: jax.Array  # int32 [] 0-based index of the game being played
    fruit_row: jax.Array  # int32 []
    fruit_col: jax.Array  # int32 []
    basket: jax.Array  # int32 [] basket column (row is always GRID - 1)
    caught_this_game: jax.Array  # int32 [] 1 iff the current game's fruit landed in the basket
    catches: jax.Array  # int32 [] catches so far in the episode
    fruit_starts: jax.Array  # int32 [runs] fruit column of every game, drawn at reset
    basket_starts: jax.Array  # int32 [runs] basket column of every game, drawn at reset


class CatchDraws(NamedTuple):
    """A step needs no randomness: every game's start is drawn at reset."""


@register
@dataclasses.dataclass(frozen=True)
class DelayedCatch(Environment):
    """`runs` Catch games per episode; the number of catches is paid on the final step."""

    runs: int = 20

    name = "delayed_catch"
    version = 1
    episode_metrics = ("catch_rate", "catches_so_far")
    reference = "twni2016/Memory-RL DelayedCatch (registered Catch-{runs}-v0)"

    def __post_init__(self):
        core.check_positive_int("runs", self.runs)

    # -- specs
    def observation_spec(self) -> ArraySpec:
        return ArraySpec((GRID * GRID,), jnp.float32, "observation", -1.0, 1.0)

    @property
    def num_actions(self) -> int:
        return 3

    @property
    def max_episode_steps(self) -> int:
        return (GAME_STEPS + 1) * self.runs - 1

    def extras_spec(self) -> dict[str, ArraySpec]:
        return {
            "game_index": ArraySpec((), jnp.int32, "game_index"),
            "caught_this_game": ArraySpec((), jnp.float32, "caught_this_game"),
            "catches_so_far": ArraySpec((), jnp.int32, "catches_so_far"),
            "catch_rate": ArraySpec((), jnp.float32, "catch_rate"),
        }

    # -- rules
    def observe(self, state: CatchState) -> jax.Array:
        cells = jnp.arange(GRID * GRID)  # [49]
        fruit = cells == state.fruit_row * GRID + state.fruit_col
        basket = cells == (GRID - 1) * GRID + state.basket
        return jnp.where(basket, 1.0, jnp.where(fruit, -1.0, 0.0)).astype(jnp.float32)  # [49]

    def _extras(self, state: CatchState) -> dict[str, jax.Array]:
        return {
            "game_index": state.game_index,
            "caught_this_game": state.caught_this_game.astype(jnp.float32),
            "catches_so_far": state.catches,
            "catch_rate": state.catches.astype(jnp.float32) / self.runs,
        }

    def initial_state(self, fruit_starts: jax.Array, basket_starts: jax.Array) -> CatchState:
        """The state at reset, from every game's fruit and basket start columns ([runs] each)."""
        fruit_starts = jnp.asarray(fruit_starts, jnp.int32)
        basket_starts = jnp.asarray(basket_starts, jnp.int32)
        zero = jnp.int32(0)
        return CatchState(
            t=zero,
            game_index=zero,
            fruit_row=zero,
            fruit_col=fruit_starts[0],
            basket=basket_starts[0],
            caught_this_game=zero,
            catches=zero,
            fruit_starts=fruit_starts,
            basket_starts=basket_starts,
        )

    def _reset(self, key: jax.Array) -> tuple[CatchState, TimeStep]:
        k_fruit, k_basket = jax.random.split(key)
        fruit = jax.random.randint(k_fruit, (self.runs,), 0, GRID - 1)  # U{0..5}
        basket = jax.random.randint(k_basket, (self.runs,), 1, GRID - 2)  # U{1..4}
        return self.reset_from(self.initial_state(fruit, basket))

    def reset_from(self, state: CatchState) -> tuple[CatchState, TimeStep]:
        """Start an episode from a given initial state."""
        return state, core.first(self.observe(state), self._extras(state))

    def sample_step_draws(self, key: jax.Array, state: CatchState) -> CatchDraws:
        return CatchDraws()

    def transition(
        self, state: CatchState, action: jax.Array, draws: CatchDraws
    ) -> tuple[CatchState, TimeStep]:
        landed = state.fruit_row == GRID - 1  # the previous step ended a game

        # Soft reset: the next game starts; the action is ignored.
        next_game = jnp.minimum(state.game_index + 1, self.runs - 1)
        soft = state._replace(
            game_index=next_game,
            fruit_row=jnp.int32(0),
            fruit_col=state.fruit_starts[next_game],
            basket=state.basket_starts[next_game],
            caught_this_game=jnp.int32(0),
        )

        # Play: the basket moves, then the fruit falls one row.
        move = jnp.clip(jnp.asarray(action, jnp.int32), 0, 2) - 1
        basket = jnp.clip(state.basket + move, 0, GRID - 1)
        fruit_row = state.fruit_row + 1
        caught = ((fruit_row == GRID - 1) & (state.fruit_col == basket)).astype(jnp.int32)
        play = state._replace(
            fruit_row=fruit_row,
            basket=basket,
            caught_this_game=caught,
            catches=state.catches + caught,
        )

        state = core.select_tree(landed, soft, play)._replace(t=state.t + 1)
        done = state.t >= self.max_episode_steps
        reward = jnp.where(done, state.catches, 0).astype(jnp.float32)
        return state, core.transition_or_termination(
            self.observe(state), reward, done, self._extras(state)
        )
