"""Symbolic Alchemy (dm_alchemy `symbolic_alchemy.py`) as a pure-JAX environment.

An episode is `num_trials` trials of `trial_steps` steps. At reset the chemistry (rotation,
stone map, potion map, graph; see `chemistry.py`) and the items of every trial (3 stones as
latent cube vertices, 12 potions as latent (axis, direction) types) are drawn from the key; they
can also be injected (`reset_from`), which is how recorded upstream episodes are replayed.

Rules (abstraction spec §1): putting a stone into a potion always uses the potion up and moves
the stone one cube edge along the potion's latent axis towards its direction iff the stone sits
on the other side and that edge exists in the graph; putting a stone into the cauldron pays its
value (sum of latent coordinates, +12 at (1,1,1)) and uses the stone; actions on used slots and
no-ops use a step and do nothing. The step that ends a trial returns the next trial's
observation (the outcome of that action is in the `trial_final_obs` extra); the last step of the
last trial is LAST with discount 0 and shows the final state. Trial boundaries keep discount 1.

Observation: float32[39] `symbolic_obs` (24 with `observe_used=False`), per stone slot
[perceived coords (3), reward indicator / 3, used] and per potion slot [colour / 3 - 1, used];
used or absent slots read [2, 2, 2, 2, 1] and [1, 1]. With `chem_input="ground_truth"` the
28-float ground-truth chemistry (§1.7) is appended (float32[67]). The belief-state input needs
the exact posterior (§2.2) and is not part of this module.
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
from environments.symbolic_alchemy import chemistry as chem
from environments.symbolic_alchemy.chemistry import Chemistry

LEVELS = tuple(chem.LEVELS)
DEFAULT_LEVEL = "perceptual_mapping_randomized_with_random_bottleneck"
CHEM_INPUTS = ("none", "ground_truth")
CHEM_GRAPH_FRAMES = ("reference", "aligned")
# Extras `event` codes; "none" is the FIRST timestep's.
EVENTS = (
    "none",
    "noop",
    "end_trial",
    "potion_effect",
    "potion_no_effect",
    "cauldron",
    "stone_slot_empty",
    "potion_slot_empty",
)
_EV = {name: i for i, name in enumerate(EVENTS)}
_SLOTS_PER_STONE = 1 + chem.MAX_POTIONS  # cauldron + 12 potions = 13


class AlchemyState(NamedTuple):
    chemistry: Chemistry  # 4 int32 [] indices
    trial_stones: jax.Array  # int32 [T, 3] latent vertex of every trial's stones
    trial_potions: jax.Array  # int32 [T, 12] latent potion type of every trial's potions
    stones: jax.Array  # int32 [3] current latent vertex per stone slot
    stone_present: jax.Array  # bool [3]
    potion_present: jax.Array  # bool [12]
    trial: jax.Array  # int32 [] current trial (0-based)
    step_in_trial: jax.Array  # int32 [] steps taken in the current trial
    trial_returns: jax.Array  # float32 [T] rewards summed per trial
    counts: jax.Array  # int32 [5] behaviour counters, see BEHAVIOUR_COUNTS


BEHAVIOUR_COUNTS = (
    "potions_used",  # stone-into-potion uses
    "no_effect_potions",  # ... that left the stone where it was
    "negative_cashed",  # stones of negative value put in the cauldron
    "positive_left",  # stones of positive value still present when a trial ended
    "degraded_15",  # stones moved away from the +15 vertex
)


@register
@dataclasses.dataclass(frozen=True)
class SymbolicAlchemy(Environment):
    """Symbolic Alchemy with dm_alchemy's rules; `level` picks what the chemistry randomises."""

    level: str = DEFAULT_LEVEL
    end_trial_action: bool = False
    num_trials: int = 10
    trial_steps: int = 20
    stones_per_trial: int = chem.MAX_STONES
    potions_per_trial: int = chem.MAX_POTIONS
    observe_used: bool = True
    chem_input: str = "none"
    chem_graph_frame: str = "reference"

    name = "symbolic_alchemy"
    version = 1
    episode_metrics = ("episode_return", "trial_returns", "num_edges") + BEHAVIOUR_COUNTS
    reference = "dm_alchemy/symbolic_alchemy.py @ 12f439c"

    def __post_init__(self):
        core.validate_choice("level", self.level, LEVELS)
        core.validate_choice("chem_input", self.chem_input, CHEM_INPUTS)
        core.validate_choice("chem_graph_frame", self.chem_graph_frame, CHEM_GRAPH_FRAMES)
        core.check_positive_int("num_trials", self.num_trials)
        core.check_positive_int("trial_steps", self.trial_steps)
        for name, maximum in (
            ("stones_per_trial", chem.MAX_STONES),
            ("potions_per_trial", chem.MAX_POTIONS),
        ):
            value = core.check_positive_int(name, getattr(self, name))
            if value > maximum:
                raise ValueError(f"{name} must be <= {maximum}, got {value}")
        for name in ("end_trial_action", "observe_used"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    # -- specs
    @property
    def symbolic_obs_size(self) -> int:
        per_stone, per_potion = (5, 2) if self.observe_used else (4, 1)
        return chem.MAX_STONES * per_stone + chem.MAX_POTIONS * per_potion

    def observation_spec(self) -> ArraySpec:
        size = self.symbolic_obs_size
        if self.chem_input == "ground_truth":
            size += chem.CHEM_SIZE
        return ArraySpec((size,), jnp.float32, "observation", -1.0, 2.0)

    @property
    def num_actions(self) -> int:
        return 1 + chem.MAX_STONES * _SLOTS_PER_STONE + int(self.end_trial_action)

    @property
    def max_episode_steps(self) -> int:
        return self.num_trials * self.trial_steps

    def extras_spec(self) -> dict[str, ArraySpec]:
        i32, f32 = jnp.int32, jnp.float32
        spec = {
            "trial": ArraySpec((), i32, "trial"),
            "step_in_trial": ArraySpec((), i32, "step_in_trial"),
            "event": ArraySpec((), i32, "event", 0, len(EVENTS) - 1),
            "cashed_value": ArraySpec((), f32, "cashed_value"),
            "trial_final_obs": ArraySpec((self.symbolic_obs_size,), f32, "trial_final_obs"),
            "chemistry_id": ArraySpec((4,), i32, "chemistry_id"),
            "num_edges": ArraySpec((), i32, "num_edges"),
            "episode_return": ArraySpec((), f32, "episode_return"),
            "trial_returns": ArraySpec((self.num_trials,), f32, "trial_returns"),
        }
        spec.update({name: ArraySpec((), i32, name) for name in BEHAVIOUR_COUNTS})
        return spec

    # -- observation
    def symbolic_obs(self, state: AlchemyState) -> jax.Array:
        """The `symbolic_obs` vector of the current items (float32 [39] or [24])."""
        c = state.chemistry
        stone_feats = jnp.asarray(chem.STONE_FEATURES)[c.rotation, c.stone_map][state.stones]
        potion_types = state.trial_potions[state.trial]  # [12]
        potion_feats = jnp.asarray(chem.POTION_FEATURES)[c.potion_map][potion_types]  # [12]
        if self.observe_used:
            stone_feats = jnp.concatenate([stone_feats, jnp.zeros((3, 1), jnp.float32)], 1)
            potion_feats = jnp.stack([potion_feats, jnp.zeros_like(potion_feats)], 1)  # [12, 2]
        else:
            potion_feats = potion_feats[:, None]  # [12, 1]
        stone_obs = jnp.where(state.stone_present[:, None], stone_feats, 2.0)
        if self.observe_used:
            stone_obs = stone_obs.at[:, -1].set(jnp.where(state.stone_present, 0.0, 1.0))
        potion_obs = jnp.where(state.potion_present[:, None], potion_feats, 1.0)
        return jnp.concatenate([stone_obs.reshape(-1), potion_obs.reshape(-1)])

    def observe(self, state: AlchemyState) -> jax.Array:
        obs = self.symbolic_obs(state)
        if self.chem_input == "ground_truth":
            gt = chem.ground_truth_vector(state.chemistry, self.chem_graph_frame)
            obs = jnp.concatenate([obs, gt])
        return obs

    def _extras(
        self, state: AlchemyState, trial, step_in_trial, event, cashed, final_obs
    ) -> dict[str, jax.Array]:
        c = state.chemistry
        extras = {
            "trial": jnp.asarray(trial, jnp.int32),
            "step_in_trial": jnp.asarray(step_in_trial, jnp.int32),
            "event": jnp.asarray(event, jnp.int32),
            "cashed_value": jnp.asarray(cashed, jnp.float32),
            "trial_final_obs": final_obs,
            "chemistry_id": jnp.stack([c.rotation, c.stone_map, c.potion_map, c.graph]),
            "num_edges": jnp.asarray(chem.NUM_EDGES)[c.graph],
            "episode_return": state.trial_returns.sum(),
            "trial_returns": state.trial_returns,
        }
        extras.update({name: state.counts[i] for i, name in enumerate(BEHAVIOUR_COUNTS)})
        return extras

    # -- reset
    def _trial_items(self, state: AlchemyState, trial: jax.Array) -> AlchemyState:
        """Place trial `trial`'s items (fresh slots) and zero the trial's step count."""
        return state._replace(
            stones=state.trial_stones[trial],
            stone_present=jnp.arange(chem.MAX_STONES) < self.stones_per_trial,
            potion_present=jnp.arange(chem.MAX_POTIONS) < self.potions_per_trial,
            trial=jnp.asarray(trial, jnp.int32),
            step_in_trial=jnp.int32(0),
        )

    def sample_episode(self, key: jax.Array) -> tuple[Chemistry, jax.Array, jax.Array]:
        """The chemistry and every trial's items ([T, 3] vertices, [T, 12] potion types)."""
        k_chem, k_items = jax.random.split(key)
        stones, potions = chem.sample_items(k_items, self.num_trials)
        return chem.sample_chemistry(k_chem, self.level), stones, potions

    def _reset(self, key: jax.Array) -> tuple[AlchemyState, TimeStep]:
        return self.reset_from(*self.sample_episode(key))

    def reset_from(
        self, chemistry: Chemistry, trial_stones: jax.Array, trial_potions: jax.Array
    ) -> tuple[AlchemyState, TimeStep]:
        """Start an episode from an injected chemistry and items (the replay path)."""
        chemistry = Chemistry(*(jnp.asarray(x, jnp.int32) for x in chemistry))
        state = AlchemyState(
            chemistry=chemistry,
            trial_stones=jnp.asarray(trial_stones, jnp.int32).reshape(self.num_trials, 3),
            trial_potions=jnp.asarray(trial_potions, jnp.int32).reshape(self.num_trials, 12),
            stones=jnp.zeros(chem.MAX_STONES, jnp.int32),
            stone_present=jnp.zeros(chem.MAX_STONES, bool),
            potion_present=jnp.zeros(chem.MAX_POTIONS, bool),
            trial=jnp.int32(0),
            step_in_trial=jnp.int32(0),
            trial_returns=jnp.zeros(self.num_trials, jnp.float32),
            counts=jnp.zeros(len(BEHAVIOUR_COUNTS), jnp.int32),
        )
        state = self._trial_items(state, jnp.int32(0))
        obs = self.observe(state)
        extras = self._extras(state, 0, 0, _EV["none"], 0.0, self.symbolic_obs(state))
        return state, core.first(obs, extras)

    # -- step
    def sample_step_draws(self, key: jax.Array, state: AlchemyState) -> tuple:
        """Steps are deterministic: every random draw happens at reset."""
        return ()

    def decode_action(self, action: jax.Array):
        """(end_trial, noop, stone slot, cauldron?, potion slot) of an integer action."""
        a = jnp.asarray(action, jnp.int32)
        if self.end_trial_action:
            end_trial, k = a == 0, a - 1
        else:
            end_trial, k = jnp.bool_(False), a
        noop = k == 0
        stone_action = k >= 1
        s = jnp.clip((k - 1) // _SLOTS_PER_STONE, 0, chem.MAX_STONES - 1)
        t = jnp.clip(k - 1, 0) % _SLOTS_PER_STONE
        cauldron = stone_action & (t == 0)
        potion = stone_action & (t >= 1)
        p = jnp.clip(t - 1, 0, chem.MAX_POTIONS - 1)
        return end_trial, noop & ~end_trial, s, cauldron, potion, p

    def transition(
        self, state: AlchemyState, action: jax.Array, draws: tuple
    ) -> tuple[AlchemyState, TimeStep]:
        c = state.chemistry
        values = jnp.asarray(chem.VALUES)
        end_trial, noop, s, cauldron, potion, p = self.decode_action(action)
        stone_ok = state.stone_present[s]
        potion_ok = state.potion_present[p]
        do_cauldron = cauldron & stone_ok
        do_potion = potion & stone_ok & potion_ok
        vertex = state.stones[s]
        potion_type = state.trial_potions[state.trial, p]
        moved_to = jnp.asarray(chem.MOVE)[c.graph, vertex, potion_type]
        new_vertex = jnp.where(do_potion, moved_to, vertex)
        reward = jnp.where(do_cauldron, values[vertex], 0).astype(jnp.float32)

        event = jnp.select(
            [
                end_trial,
                noop,
                ~stone_ok,
                cauldron,
                ~potion_ok,
                moved_to != vertex,
            ],
            [
                _EV["end_trial"],
                _EV["noop"],
                _EV["stone_slot_empty"],
                _EV["cauldron"],
                _EV["potion_slot_empty"],
                _EV["potion_effect"],
            ],
            _EV["potion_no_effect"],
        )

        after = state._replace(
            stones=state.stones.at[s].set(new_vertex),
            stone_present=state.stone_present.at[s].set(stone_ok & ~do_cauldron),
            potion_present=state.potion_present.at[p].set(potion_ok & ~do_potion),
            step_in_trial=state.step_in_trial + 1,
            trial_returns=state.trial_returns.at[state.trial].add(reward),
        )
        trial_end = end_trial | (after.step_in_trial >= self.trial_steps)
        last = trial_end & (state.trial >= self.num_trials - 1)
        positive_left = jnp.sum(after.stone_present & (values[after.stones] > 0))
        counts = state.counts + jnp.stack(
            [
                do_potion,
                do_potion & (moved_to == vertex),
                do_cauldron & (values[vertex] < 0),
                trial_end * positive_left,
                do_potion & (vertex == chem.NUM_VERTICES - 1) & (moved_to != vertex),
            ]
        ).astype(jnp.int32)
        after = after._replace(counts=counts)

        next_trial = jnp.minimum(state.trial + 1, self.num_trials - 1)
        advanced = self._trial_items(after, next_trial)
        new_state = core.select_tree(trial_end & ~last, advanced, after)

        final_obs = self.symbolic_obs(after)
        extras = self._extras(new_state, state.trial, after.step_in_trial, event, reward, final_obs)
        timestep = core.transition_or_termination(self.observe(new_state), reward, last, extras)
        return new_state, timestep


# --------------------------------------------------------------------------------- replay


def chemistry_from_record(record_chemistry: dict) -> Chemistry:
    """Indices of a recorded chemistry (reference README §1 'Chemistry object')."""
    pm = record_chemistry["potion_map"]
    return Chemistry(
        rotation=np.int32(record_chemistry["rotation"]["index"]),
        stone_map=np.int32(chem.stone_map_index(record_chemistry["stone_map"]["latent_pos_dir"])),
        potion_map=np.int32(chem.potion_map_index(pm["dim_map"], pm["dir_map"])),
        graph=np.int32(chem.graph_index(record_chemistry["graph"]["edge_vector"])),
    )


def items_from_record(trials: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Recorded items in slot order: ([T, 3] latent vertices, [T, 12] latent potion types)."""
    stones = np.array([[st["latent_index"] for st in t["stones"]] for t in trials], np.int32)
    potions = np.array(
        [[2 * p["latent_dim"] + (p["latent_dir"] + 1) // 2 for p in t["potions"]] for t in trials],
        np.int32,
    )
    return stones, potions


@functools.partial(jax.jit, static_argnums=0)
def _replay_episode(env: SymbolicAlchemy, chemistry, stones, potions, actions):
    """Reset from injected items, then scan the actions: (first TimeStep, stacked TimeSteps)."""
    state, first = env.reset_from(chemistry, stones, potions)

    def body(state, action):
        state, ts = env.transition(state, action, ())
        return state, (ts.observation, ts.reward, ts.discount, ts.step_type)

    _, outs = jax.lax.scan(body, state, actions)
    return first.observation, first.step_type, outs


@reference.register_replayer("symbolic_alchemy")
def replay_dm_alchemy(record: dict):
    """Replay a dm_alchemy recording (reference README §1) with the injected chemistry/items."""
    env = SymbolicAlchemy(
        level=record["level"],
        end_trial_action=bool(record["end_trial_action"]),
        num_trials=len(record["trials"]),
    )
    stones, potions = items_from_record(record["trials"])
    steps = record["steps"]
    actions = np.zeros(env.max_episode_steps, np.int32)  # padded past the episode's end
    actions[: len(steps)] = [s["action"] for s in steps]
    obs0, type0, (obs, reward, discount, step_type) = jax.device_get(
        _replay_episode(env, chemistry_from_record(record["chemistry"]), stones, potions, actions)
    )
    yield reference.check(-1, "observation", record["first_obs"], obs0, as_float32=True)
    yield reference.check(-1, "step_type", record.get("first_step_type", 0), type0)
    for k, s in enumerate(steps):
        yield reference.check(k, "observation", s["obs"], obs[k], as_float32=True)
        yield reference.check(k, "reward", s["reward"], reward[k])
        yield reference.check(k, "discount", s["discount"], discount[k])
        yield reference.check(k, "step_type", s["step_type"], step_type[k])
