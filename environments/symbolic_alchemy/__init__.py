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
28-float ground-truth chemistry (§1.7) is appended (float32[67]); with `"belief_state"` the
28-float belief of the exact posterior (§2.2, kept in the state by `belief.py`; reference
encoding of §1.7, `belief_dim_map` picks the dim-map 1.0 rule; like the reference tracker it
takes in the outcome of a trial's last action, which the observation hides; extra
`n_consistent` counts the chemistries left); with `"perceived"` the 33-float chemistry in the
observation's own frame (`chemistry.perceived_vector`: each colour's move in perceived
coordinates, the aligned-frame edges, the +15 vertex's perceived coordinates; float32[72]).

Options of the abstraction paper's agent (spec §4.3; every default is dm_alchemy's behaviour):
- `obs_repr="potion_counts"`: the 15 stone features then the number of unused potions of each
  of the 6 colours (float32[21]) instead of the potion slots.
- `action_space="colour"`: 22 actions, 0 no-op and 1 + 7·s + c: stone s into the unused potion
  slot of colour c (c < 6) with the highest index, or into the cauldron (c = 6). A colour with no
  unused potion changes nothing (event `potion_slot_empty`), like a no-op.
- `shaping=True`: the `shaped_reward` extra adds -0.2 when an action other than a no-op leaves
  every stone feature unchanged, -1 instead when it leaves the whole observation unchanged, and
  a further -1 when it repeats the previous step's (stone, potion colour); never on a trial's
  last step. `timestep.reward` is always the environment's reward.
Extras for learners: `shaped_reward` (the reward itself when `shaping` is off), `trial_start`
(FIRST and every timestep that shows a new trial's items) and `chem_ground_truth` (§1.7, in
`chem_graph_frame`; the target of a chemistry-prediction loss). `trial_final_obs` keeps the
`symbolic_obs` layout whatever `obs_repr` is.
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
from environments.symbolic_alchemy import belief
from environments.symbolic_alchemy import chemistry as chem
from environments.symbolic_alchemy.chemistry import Chemistry

LEVELS = tuple(chem.LEVELS)
DEFAULT_LEVEL = "perceptual_mapping_randomized_with_random_bottleneck"
CHEM_INPUTS = ("none", "ground_truth", "belief_state", "perceived")
CHEM_INPUT_SIZES = {  # floats appended to the observation
    "none": 0,
    "ground_truth": chem.CHEM_SIZE,
    "belief_state": chem.CHEM_SIZE,
    "perceived": chem.PERCEIVED_SIZE,
}
CHEM_GRAPH_FRAMES = ("reference", "aligned")
OBS_REPRS = ("slots", "potion_counts")
ACTION_SPACES = ("slot", "colour")
BELIEF_DIM_MAPS = belief.DIM_MAP_RULES
# Shaping (spec §4.3): no effect on the stones / on the whole observation / repeated action.
PENALTY_NO_STONE_CHANGE, PENALTY_NO_CHANGE, PENALTY_REPEAT = -0.2, -1.0, -1.0
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
_COLOURS_PER_STONE = chem.NUM_POTION_TYPES + 1  # 6 colours + cauldron = 7 (colour actions)


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
    # (stone slot · 6 + potion colour) of the previous step's potion action in this trial, or -1
    last_pair: jax.Array  # int32 []
    posterior: belief.Posterior | None  # the exact posterior with `chem_input="belief_state"`


class Move(NamedTuple):
    """An integer action decoded against the state (scalars)."""

    end_trial: jax.Array  # bool
    noop: jax.Array  # bool
    stone: jax.Array  # int32 stone slot
    cauldron: jax.Array  # bool
    potion: jax.Array  # bool: a stone-into-potion action
    slot: jax.Array  # int32 potion slot
    available: jax.Array  # bool: a potion slot was found (colour actions) or named (slot actions)
    colour: jax.Array  # int32 colour of that potion (the chosen colour for colour actions)


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
    belief_dim_map: str = "reference"
    obs_repr: str = "slots"
    action_space: str = "slot"
    shaping: bool = False

    name = "symbolic_alchemy"
    version = 1
    episode_metrics = ("episode_return", "trial_returns", "num_edges") + BEHAVIOUR_COUNTS
    reference = "dm_alchemy/symbolic_alchemy.py @ 12f439c"

    def __post_init__(self):
        core.validate_choice("level", self.level, LEVELS)
        core.validate_choice("chem_input", self.chem_input, CHEM_INPUTS)
        core.validate_choice("chem_graph_frame", self.chem_graph_frame, CHEM_GRAPH_FRAMES)
        core.validate_choice("belief_dim_map", self.belief_dim_map, BELIEF_DIM_MAPS)
        core.validate_choice("obs_repr", self.obs_repr, OBS_REPRS)
        core.validate_choice("action_space", self.action_space, ACTION_SPACES)
        core.check_positive_int("num_trials", self.num_trials)
        core.check_positive_int("trial_steps", self.trial_steps)
        for name, maximum in (
            ("stones_per_trial", chem.MAX_STONES),
            ("potions_per_trial", chem.MAX_POTIONS),
        ):
            value = core.check_positive_int(name, getattr(self, name))
            if value > maximum:
                raise ValueError(f"{name} must be <= {maximum}, got {value}")
        for name in ("end_trial_action", "observe_used", "shaping"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    # -- specs
    @property
    def symbolic_obs_size(self) -> int:
        per_stone, per_potion = (5, 2) if self.observe_used else (4, 1)
        return chem.MAX_STONES * per_stone + chem.MAX_POTIONS * per_potion

    @property
    def _stone_features(self) -> int:
        return 5 if self.observe_used else 4

    def observation_spec(self) -> ArraySpec:
        if self.obs_repr == "slots":
            size, maximum = self.symbolic_obs_size, 2.0
        else:  # stone features, then unused potions per colour (0..potions_per_trial)
            size = chem.MAX_STONES * self._stone_features + chem.NUM_POTION_TYPES
            maximum = float(max(2, self.potions_per_trial))
        size += CHEM_INPUT_SIZES[self.chem_input]
        return ArraySpec((size,), jnp.float32, "observation", -1.0, maximum)

    @property
    def num_actions(self) -> int:
        per_stone = _SLOTS_PER_STONE if self.action_space == "slot" else _COLOURS_PER_STONE
        return 1 + chem.MAX_STONES * per_stone + int(self.end_trial_action)

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
            "shaped_reward": ArraySpec((), f32, "shaped_reward"),
            "trial_start": ArraySpec((), bool, "trial_start"),
            "chem_ground_truth": ArraySpec((chem.CHEM_SIZE,), f32, "chem_ground_truth", 0.0, 1.0),
        }
        if self.chem_input == "belief_state":
            spec["n_consistent"] = ArraySpec((), i32, "n_consistent")
        spec.update({name: ArraySpec((), i32, name) for name in BEHAVIOUR_COUNTS})
        return spec

    # -- observation
    def _stone_obs(self, state: AlchemyState) -> jax.Array:
        """Stone slot features [3, 5] (or [3, 4] without used flags)."""
        c = state.chemistry
        stone_feats = jnp.asarray(chem.STONE_FEATURES)[c.rotation, c.stone_map][state.stones]
        if self.observe_used:
            stone_feats = jnp.concatenate([stone_feats, jnp.zeros((3, 1), jnp.float32)], 1)
        stone_obs = jnp.where(state.stone_present[:, None], stone_feats, 2.0)
        if self.observe_used:
            stone_obs = stone_obs.at[:, -1].set(jnp.where(state.stone_present, 0.0, 1.0))
        return stone_obs

    def _potion_colours(self, state: AlchemyState) -> jax.Array:
        """Colour (0..5) of every potion slot of the current trial, used or not ([12] int32)."""
        potion_types = state.trial_potions[state.trial]  # [12]
        return jnp.asarray(chem.LATENT_TO_COLOUR)[state.chemistry.potion_map][potion_types]

    def symbolic_obs(self, state: AlchemyState) -> jax.Array:
        """The `symbolic_obs` vector of the current items (float32 [39] or [24])."""
        c = state.chemistry
        potion_types = state.trial_potions[state.trial]  # [12]
        potion_feats = jnp.asarray(chem.POTION_FEATURES)[c.potion_map][potion_types]  # [12]
        if self.observe_used:
            potion_feats = jnp.stack([potion_feats, jnp.zeros_like(potion_feats)], 1)  # [12, 2]
        else:
            potion_feats = potion_feats[:, None]  # [12, 1]
        potion_obs = jnp.where(state.potion_present[:, None], potion_feats, 1.0)
        return jnp.concatenate([self._stone_obs(state).reshape(-1), potion_obs.reshape(-1)])

    def potion_counts_obs(self, state: AlchemyState) -> jax.Array:
        """Stone features, then unused potions per colour (float32 [21], or [18])."""
        unused = state.potion_present[:, None] & (
            self._potion_colours(state)[:, None] == jnp.arange(chem.NUM_POTION_TYPES)
        )  # [12, 6]
        counts = unused.sum(0).astype(jnp.float32)
        return jnp.concatenate([self._stone_obs(state).reshape(-1), counts])

    def observe(self, state: AlchemyState) -> jax.Array:
        if self.obs_repr == "slots":
            obs = self.symbolic_obs(state)
        else:
            obs = self.potion_counts_obs(state)
        if self.chem_input == "ground_truth":
            gt = chem.ground_truth_vector(state.chemistry, self.chem_graph_frame)
            obs = jnp.concatenate([obs, gt])
        elif self.chem_input == "belief_state":
            obs = jnp.concatenate([obs, belief.belief_vector(state.posterior, self.belief_dim_map)])
        elif self.chem_input == "perceived":
            obs = jnp.concatenate([obs, chem.perceived_vector(state.chemistry)])
        return obs

    def _extras(
        self,
        state: AlchemyState,
        trial,
        step_in_trial,
        event,
        cashed,
        final_obs,
        shaped,
        trial_start,
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
            "shaped_reward": jnp.asarray(shaped, jnp.float32),
            "trial_start": jnp.asarray(trial_start, bool),
            "chem_ground_truth": chem.ground_truth_vector(c, self.chem_graph_frame),
        }
        if self.chem_input == "belief_state":
            extras["n_consistent"] = belief.num_consistent(state.posterior)
        extras.update({name: state.counts[i] for i, name in enumerate(BEHAVIOUR_COUNTS)})
        return extras

    # -- reset
    def _trial_items(self, state: AlchemyState, trial: jax.Array) -> AlchemyState:
        """Place trial `trial`'s items (fresh slots) and zero the trial's step count.

        With the belief input, the posterior takes in every new stone's look and indicator.
        """
        state = state._replace(
            stones=state.trial_stones[trial],
            stone_present=jnp.arange(chem.MAX_STONES) < self.stones_per_trial,
            potion_present=jnp.arange(chem.MAX_POTIONS) < self.potions_per_trial,
            trial=jnp.asarray(trial, jnp.int32),
            step_in_trial=jnp.int32(0),
            last_pair=jnp.int32(-1),
        )
        if state.posterior is not None:
            post = state.posterior
            for i in range(self.stones_per_trial):
                pid, indicator = self._stone_evidence(state, state.stones[i])
                post = belief.observe_stone(self.level, post, pid, indicator)
            state = state._replace(posterior=post)
        return state

    def _prior(self) -> belief.Posterior:
        """The level's prior support, kept opaque to XLA: folding the reductions of a constant
        broadcast over a vmapped batch took minutes of compile time."""
        return jax.lax.optimization_barrier(belief.prior(self.level))

    def _stone_evidence(self, state: AlchemyState, vertex: jax.Array):
        """(perceived id, reward indicator) of a stone at latent `vertex`: what is observed."""
        c = state.chemistry
        pid_of = jnp.asarray(belief.tables(self.level).pid_of)
        return pid_of[c.rotation, c.stone_map, vertex], jnp.asarray(chem.REWARD_INDICATOR)[vertex]

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
            last_pair=jnp.int32(-1),
            posterior=self._prior() if self.chem_input == "belief_state" else None,
        )
        state = self._trial_items(state, jnp.int32(0))
        obs = self.observe(state)
        extras = self._extras(state, 0, 0, _EV["none"], 0.0, self.symbolic_obs(state), 0.0, True)
        return state, core.first(obs, extras)

    # -- step
    def sample_step_draws(self, key: jax.Array, state: AlchemyState) -> tuple:
        """Steps are deterministic: every random draw happens at reset."""
        return ()

    def decode_action(self, state: AlchemyState, action: jax.Array) -> Move:
        """Decode an integer action of `action_space` against the state's items."""
        a = jnp.asarray(action, jnp.int32)
        if self.end_trial_action:
            end_trial, k = a == 0, a - 1
        else:
            end_trial, k = jnp.bool_(False), a
        noop = (k == 0) & ~end_trial
        stone_action = k >= 1
        colours = self._potion_colours(state)  # [12]
        per_stone = _SLOTS_PER_STONE if self.action_space == "slot" else _COLOURS_PER_STONE
        s = jnp.clip((k - 1) // per_stone, 0, chem.MAX_STONES - 1)
        t = jnp.clip(k - 1, 0) % per_stone
        if self.action_space == "slot":
            cauldron = stone_action & (t == 0)
            p = jnp.clip(t - 1, 0, chem.MAX_POTIONS - 1)
            available, colour = jnp.bool_(True), colours[p]
        else:  # t = colour (0..5) or the cauldron (6); the unused slot of that colour last
            cauldron = stone_action & (t == chem.NUM_POTION_TYPES)
            match = state.potion_present & (colours == t)
            last = jnp.max(jnp.where(match, jnp.arange(chem.MAX_POTIONS), -1))
            p, available, colour = jnp.maximum(last, 0), last >= 0, t
        potion = stone_action & ~cauldron
        return Move(end_trial, noop, s, cauldron, potion, p, available, colour)

    def transition(
        self, state: AlchemyState, action: jax.Array, draws: tuple
    ) -> tuple[AlchemyState, TimeStep]:
        c = state.chemistry
        values = jnp.asarray(chem.VALUES)
        move = self.decode_action(state, action)
        end_trial, noop, s, cauldron, potion, p = move[:6]
        stone_ok = state.stone_present[s]
        potion_ok = state.potion_present[p] & move.available
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
            potion_present=state.potion_present.at[p].set(state.potion_present[p] & ~do_potion),
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
        pair = jnp.where(potion, s * chem.NUM_POTION_TYPES + move.colour, -1)
        after = after._replace(counts=counts, last_pair=pair.astype(jnp.int32))
        shaped = reward + self._penalty(state, after, move, trial_end)
        if state.posterior is not None:  # a potion use shows the stone's look afterwards
            pid0, _ = self._stone_evidence(state, vertex)
            pid1, indicator1 = self._stone_evidence(state, moved_to)
            colour = jnp.asarray(chem.LATENT_TO_COLOUR)[c.potion_map, potion_type]
            post = belief.observe_potion(
                self.level, state.posterior, pid0, colour, pid1, indicator1
            )
            after = after._replace(posterior=core.select_tree(do_potion, post, state.posterior))

        next_trial = jnp.minimum(state.trial + 1, self.num_trials - 1)
        advanced = self._trial_items(after, next_trial)
        new_trial = trial_end & ~last
        new_state = core.select_tree(new_trial, advanced, after)

        final_obs = self.symbolic_obs(after)
        extras = self._extras(
            new_state,
            state.trial,
            after.step_in_trial,
            event,
            reward,
            final_obs,
            shaped,
            new_trial,
        )
        timestep = core.transition_or_termination(self.observe(new_state), reward, last, extras)
        return new_state, timestep

    def _penalty(
        self, before: AlchemyState, after: AlchemyState, move: Move, trial_end: jax.Array
    ) -> jax.Array:
        """The shaping term of spec §4.3 (0 without `shaping` and on a trial's last step)."""
        if not self.shaping:
            return jnp.float32(0.0)
        same_stones = jnp.all(after.stones == before.stones) & jnp.all(
            after.stone_present == before.stone_present
        )
        same_obs = same_stones & jnp.all(after.potion_present == before.potion_present)
        acted = ~move.noop & ~move.end_trial
        no_change = jnp.where(same_obs, PENALTY_NO_CHANGE, PENALTY_NO_STONE_CHANGE)
        penalty = jnp.where(acted & same_stones, no_change, 0.0)
        repeat = (after.last_pair >= 0) & (after.last_pair == before.last_pair)
        penalty = penalty + jnp.where(repeat, PENALTY_REPEAT, 0.0)
        return jnp.where(trial_end, 0.0, penalty).astype(jnp.float32)


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
