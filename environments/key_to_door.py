"""Key-to-Door (DeepMind TVT pycolab `key_to_door`): a key picked up early opens a door much later.

An episode is three phases on 7×11 boards, each lasting exactly its frame budget of actions
(credit spec §1.3, reference README §2):

  0 explore     two rooms joined by a passage; the key lies on one of the 10 upper-room cells and
                the player starts on one of the 10 lower-room cells. Stepping on the key sets
                `has_key` and hides the key (reward 0); the indicator cell (0, 5) shows white on
                the frame of the pickup only.
  1 distractor  a walled room with `num_apples` apples drawn from 22 candidate cells; eating one
                pays the episode's apple value; an apple eaten at phase frame k is back at the
                first phase frame > k + respawn time.
  2 reward      a small room whose door (1, 5) is impassable without the key; entering it with the
                key pays `final_reward` once and consumes the key. The door then stays passable.

The action that exhausts a phase returns the first observation of the next phase (with the old
phase's reward); the episode terminates with the last phase's final action. Actions: 0 N, 1 S,
2 W, 3 E; a move into a wall (or off the board) leaves the player in place.

The observation is pycolab's `ScrollingCropper` view (5×5, scroll margins 2, background padding):
the 5×5×3 uint8 RGB window centred on the player, colours on pycolab's 0–1000 scale truncated to
uint8 (×255/1000). Drawing order: key, indicator, player (phase 0); apples, player (phase 1);
player, door (phase 2, so the door covers the player standing in the doorway).

Per-episode randomness: key cell, start cell, apple subset, apple value (with
`fix_apple_reward_in_episode`, one of the two `apple_reward` endpoints with probability ½ each,
as TVT does; otherwise a uniform draw in [lo, hi) per apple eaten).

Presets (`preset`): "ktd_tvt" (TVT's defaults: phases 15/90/15, apples 1 or 10, door 10) and
"ktd_sr_ni" (Ni et al.'s SR version: phases 15/60/10, apples 1, door 5).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from environments import core, reference
from environments.core import ArraySpec, Environment, TimeStep
from environments.registry import register

HEIGHT, WIDTH = 7, 11  # every phase's board
WINDOW = 5  # egocentric crop, rows = cols
PAD = WINDOW // 2

# Colour indices of the rendered board and their pycolab colours (0–1000 scale).
BACKGROUND, WALL, PLAYER, KEY, DOOR, APPLE, INDICATOR = range(7)
COLOURS_1000 = np.array(
    [
        (800, 800, 800),  # background and floor
        (100, 100, 100),  # wall
        (898, 584, 430),  # player
        (627, 321, 176),  # key
        (529, 808, 922),  # door
        (550, 700, 0),  # apple
        (1000, 1000, 1000),  # indicator
    ],
    np.int64,
)
PALETTE = (COLOURS_1000 * 255 // 1000).astype(np.uint8)  # [7, 3] truncated, as pycolab's uint8

# Boards: '#' wall, anything else floor/background (both drawn in the background colour). The
# door (1, 5) of the reward board is a sprite over floor: it blocks only while the key is missing.
EXPLORE_BOARD = (
    "  #######  ",
    "  #     #  ",
    "  #     #  ",
    "  ##   ##  ",
    "  #     #  ",
    "  #     #  ",
    "  #######  ",
)
DISTRACTOR_BOARD = (
    "###########",
    "#         #",
    "#         #",
    "#         #",
    "#         #",
    "#         #",
    "###########",
)
REWARD_BOARD = (
    "           ",
    "   ## ##   ",
    "   #   #   ",
    "   #   #   ",
    "   #   #   ",
    "   #####   ",
    "           ",
)
WALLS = np.array(
    [
        [[ch == "#" for ch in row] for row in board]
        for board in (EXPLORE_BOARD, DISTRACTOR_BOARD, REWARD_BOARD)
    ]
)  # [3, 7, 11] bool

# Phase 0 draws: the key on an upper-room cell, the start on a lower-room cell.
KEY_CELLS = np.array([(r, c) for r in (1, 2) for c in range(3, 8)], np.int32)  # [10, 2]
START_CELLS = np.array([(r, c) for r in (4, 5) for c in range(3, 8)], np.int32)  # [10, 2]
APPLE_CELLS = np.array(
    sorted(
        [(r, c) for r in (1, 3, 5) for c in (1, 3, 5, 7, 9) if (r, c) != (5, 5)]
        + [(r, c) for r in (2, 4) for c in (2, 4, 6, 8)]
    ),
    np.int32,
)  # [22, 2] apple candidates, row-major
PHASE_STARTS = np.array([(0, 0), (5, 5), (3, 5)], np.int32)  # [3, 2]; phase 0's start is drawn
DOOR_CELL = (1, 5)
INDICATOR_CELL = (0, 5)
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)], np.int32)  # N, S, W, E

PRESETS: dict[str, dict[str, Any]] = {
    # TVT's defaults (tvt/main.py): apple value 1 or 10 per episode, door 10.
    "ktd_tvt": {"phase_lengths": (15, 90, 15), "apple_reward": (1.0, 10.0), "final_reward": 10.0},
    # Ni et al.'s "SR version" (Memory-RL registration SR-60-v0).
    "ktd_sr_ni": {"phase_lengths": (15, 60, 10), "apple_reward": (1.0, 1.0), "final_reward": 5.0},
}


class KeyToDoorState(NamedTuple):
    t: jax.Array  # int32 [] actions taken in the episode
    phase: jax.Array  # int32 [] 0 explore, 1 distractor, 2 reward
    phase_t: jax.Array  # int32 [] actions taken in the current phase (pycolab's chapter frame)
    player: jax.Array  # int32 [2] (row, col) on the current phase's board
    key_cell: jax.Array  # int32 [2]
    key_visible: jax.Array  # bool []
    has_key: jax.Array  # bool []
    key_pickup_step: jax.Array  # int32 [] episode step (1-based) of the pickup, -1 if none
    indicator: jax.Array  # bool [] the indicator is drawn (the pickup frame only)
    door_opened: jax.Array  # bool [] the door has paid (and stays passable)
    apple_chosen: jax.Array  # bool [22] candidates that hold an apple this episode
    apple_present: jax.Array  # bool [22] apples currently on the board
    apple_last_pickup: jax.Array  # int32 [22] phase frame of the last time eaten, -1 never
    apple_value: jax.Array  # float32 [] reward of an apple (the last one paid if not fixed)
    apples_eaten: jax.Array  # int32 []
    apple_return: jax.Array  # float32 [] total apple reward so far


class KeyToDoorDraws(NamedTuple):
    apple_reward: jax.Array  # float32 [] value of an apple eaten this step (unfixed rewards only)


def _float_pair(name: str, value: Any) -> tuple[float, float]:
    """A scalar or a two-element (lo, hi) as a tuple of floats, lo <= hi."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return (float(value), float(value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        if all(isinstance(v, (int, float, np.integer, np.floating)) for v in value):
            lo, hi = float(value[0]), float(value[1])
            if lo <= hi:
                return (lo, hi)
    raise ValueError(f"{name} must be a number or a pair (lo, hi) with lo <= hi, got {value!r}")


@register
@dataclasses.dataclass(frozen=True)
class KeyToDoor(Environment):
    """TVT Key-to-Door. `preset` picks a configuration; explicit fields override it.

    `phase_lengths` (explore, distractor, reward), `apple_reward` (a number or the (lo, hi) pair
    whose endpoints a fixed episode picks from) and `final_reward` default to the preset's values
    (filled in at construction, so `config()` reports what runs).
    """

    preset: str = "ktd_tvt"  # not `config`: that name is the contract's metadata method
    phase_lengths: tuple[int, int, int] | None = None
    apple_reward: tuple[float, float] | float | None = None
    final_reward: float | None = None
    num_apples: int = 10
    apple_respawn_time: int = 20
    fix_apple_reward_in_episode: bool = True

    name = "key_to_door"
    version = 1
    episode_metrics = ("door_opened", "key_picked_up", "apple_return", "apples_eaten")
    reference = "deepmind-research tvt/pycolab/{key_to_door,common,objects,env}.py @ f5de0ed"

    def __post_init__(self):
        core.validate_choice("preset", self.preset, PRESETS)
        preset = PRESETS[self.preset]
        lengths = preset["phase_lengths"] if self.phase_lengths is None else self.phase_lengths
        if not isinstance(lengths, (list, tuple)) or len(lengths) != 3:
            raise ValueError(
                "phase_lengths must be three integers (explore, distractor, reward), "
                f"got {lengths!r}"
            )
        lengths = tuple(core.check_positive_int("phase_lengths", n) for n in lengths)
        apple = preset["apple_reward"] if self.apple_reward is None else self.apple_reward
        final = preset["final_reward"] if self.final_reward is None else self.final_reward
        if isinstance(final, bool) or not isinstance(final, (int, float, np.integer, np.floating)):
            raise ValueError(f"final_reward must be a number, got {final!r}")
        object.__setattr__(self, "phase_lengths", lengths)
        object.__setattr__(self, "apple_reward", _float_pair("apple_reward", apple))
        object.__setattr__(self, "final_reward", float(final))
        n = core.check_positive_int("num_apples", self.num_apples, minimum=0)
        if n > len(APPLE_CELLS):
            raise ValueError(f"num_apples must be at most {len(APPLE_CELLS)}, got {n}")
        core.check_positive_int("apple_respawn_time", self.apple_respawn_time, minimum=0)
        if not isinstance(self.fix_apple_reward_in_episode, bool):
            raise ValueError(
                "fix_apple_reward_in_episode must be True or False, "
                f"got {self.fix_apple_reward_in_episode!r}"
            )

    # -- specs
    def observation_spec(self) -> ArraySpec:
        return ArraySpec((WINDOW, WINDOW, 3), jnp.uint8, "observation", 0, 255)

    @property
    def num_actions(self) -> int:
        return 4

    @property
    def max_episode_steps(self) -> int:
        return sum(self.phase_lengths)

    def extras_spec(self) -> dict[str, ArraySpec]:
        scalar = lambda name, dtype: ArraySpec((), dtype, name)
        return {
            "phase": scalar("phase", jnp.int32),
            "has_key": scalar("has_key", jnp.float32),
            "key_picked_up": scalar("key_picked_up", jnp.float32),
            "key_pickup_step": scalar("key_pickup_step", jnp.int32),
            "door_opened": scalar("door_opened", jnp.float32),
            "apples_eaten": scalar("apples_eaten", jnp.int32),
            "apple_value": scalar("apple_value", jnp.float32),
            "apple_return": scalar("apple_return", jnp.float32),
        }

    # -- rules
    def render(self, state: KeyToDoorState) -> jax.Array:
        """The full board of the current phase as colour indices, in pycolab's z-order."""
        rows = jnp.arange(HEIGHT)[:, None]  # [7, 1]
        cols = jnp.arange(WIDTH)[None, :]  # [1, 11]

        def at(cell) -> jax.Array:
            return (rows == cell[0]) & (cols == cell[1])  # [7, 11]

        phase = state.phase
        board = jnp.where(jnp.asarray(WALLS)[phase], WALL, BACKGROUND)  # [7, 11]
        key = (phase == 0) & state.key_visible & at(state.key_cell)
        indicator = (phase == 0) & state.indicator & at(INDICATOR_CELL)
        apples = jnp.zeros((HEIGHT * WIDTH,), bool)
        apple_flat = jnp.asarray(APPLE_CELLS[:, 0] * WIDTH + APPLE_CELLS[:, 1])
        apples = apples.at[apple_flat].set(state.apple_present & (phase == 1))
        door = (phase == 2) & at(DOOR_CELL)
        board = jnp.where(key, KEY, board)
        board = jnp.where(indicator, INDICATOR, board)
        board = jnp.where(apples.reshape(HEIGHT, WIDTH), APPLE, board)
        board = jnp.where(at(state.player), PLAYER, board)
        return jnp.where(door, DOOR, board)  # [7, 11]

    def observe(self, state: KeyToDoorState) -> jax.Array:
        board = jnp.pad(self.render(state), PAD, constant_values=BACKGROUND)  # [11, 15]
        window = jax.lax.dynamic_slice(board, (state.player[0], state.player[1]), (WINDOW, WINDOW))
        return jnp.asarray(PALETTE)[window]  # [5, 5, 3] uint8

    def _extras(self, state: KeyToDoorState) -> dict[str, jax.Array]:
        return {
            "phase": state.phase,
            "has_key": state.has_key.astype(jnp.float32),
            "key_picked_up": (state.key_pickup_step >= 0).astype(jnp.float32),
            "key_pickup_step": state.key_pickup_step,
            "door_opened": state.door_opened.astype(jnp.float32),
            "apples_eaten": state.apples_eaten,
            "apple_value": state.apple_value,
            "apple_return": state.apple_return,
        }

    def initial_state(self, key_cell, player_start, apple_chosen, apple_value) -> KeyToDoorState:
        """The state at reset from a layout: key cell, start cell ((row, col) each), the
        apple mask over `APPLE_CELLS` ([22] bool) and the episode's apple value."""
        apple_chosen = jnp.asarray(apple_chosen, bool)
        return KeyToDoorState(
            t=jnp.int32(0),
            phase=jnp.int32(0),
            phase_t=jnp.int32(0),
            player=jnp.asarray(player_start, jnp.int32),
            key_cell=jnp.asarray(key_cell, jnp.int32),
            key_visible=jnp.bool_(True),
            has_key=jnp.bool_(False),
            key_pickup_step=jnp.int32(-1),
            indicator=jnp.bool_(False),
            door_opened=jnp.bool_(False),
            apple_chosen=apple_chosen,
            apple_present=apple_chosen,
            apple_last_pickup=jnp.full(apple_chosen.shape, -1, jnp.int32),
            apple_value=jnp.asarray(apple_value, jnp.float32),
            apples_eaten=jnp.int32(0),
            apple_return=jnp.float32(0.0),
        )

    def _reset(self, key: jax.Array) -> tuple[KeyToDoorState, TimeStep]:
        k_key, k_start, k_apples, k_value = jax.random.split(key, 4)
        key_cell = jnp.asarray(KEY_CELLS)[jax.random.randint(k_key, (), 0, len(KEY_CELLS))]
        start = jnp.asarray(START_CELLS)[jax.random.randint(k_start, (), 0, len(START_CELLS))]
        order = jax.random.permutation(k_apples, len(APPLE_CELLS))  # [22]
        chosen = jnp.zeros(len(APPLE_CELLS), bool).at[order[: self.num_apples]].set(True)
        lo, hi = self.apple_reward
        if self.fix_apple_reward_in_episode:
            value = jnp.where(jax.random.bernoulli(k_value), hi, lo)
        else:
            value = jnp.float32(0.0)  # no apple paid yet; each one draws its own value
        return self.reset_from(self.initial_state(key_cell, start, chosen, value))

    def reset_from(self, state: KeyToDoorState) -> tuple[KeyToDoorState, TimeStep]:
        """Start an episode from a given initial state (see `initial_state`)."""
        return state, core.first(self.observe(state), self._extras(state))

    def sample_step_draws(self, key: jax.Array, state: KeyToDoorState) -> KeyToDoorDraws:
        if self.fix_apple_reward_in_episode:
            return KeyToDoorDraws(state.apple_value)
        lo, hi = self.apple_reward
        return KeyToDoorDraws(jax.random.uniform(key, (), jnp.float32, lo, hi))

    def transition(
        self, state: KeyToDoorState, action: jax.Array, draws: KeyToDoorDraws
    ) -> tuple[KeyToDoorState, TimeStep]:
        phase = state.phase
        phase_t = state.phase_t + 1  # this action's frame within the phase
        t = state.t + 1

        # Player: one move, blocked by walls, the board's edge and (without the key) the door.
        target = state.player + jnp.asarray(MOVES)[jnp.clip(action, 0, 3)]
        inside = (target >= 0).all() & (target[0] < HEIGHT) & (target[1] < WIDTH)
        r, c = jnp.clip(target[0], 0, HEIGHT - 1), jnp.clip(target[1], 0, WIDTH - 1)
        at_door = (phase == 2) & (r == DOOR_CELL[0]) & (c == DOOR_CELL[1])
        door_locked = at_door & ~(state.has_key | state.door_opened)
        blocked = ~inside | jnp.asarray(WALLS)[phase, r, c] | door_locked
        player = jnp.where(blocked, state.player, target)

        # Phase 0: the key.
        pickup = (phase == 0) & state.key_visible & (player == state.key_cell).all()
        has_key = state.has_key | pickup
        key_pickup_step = jnp.where(pickup, t, state.key_pickup_step)

        # Phase 1: apples (eat under the player, then respawn).
        on_apple = (jnp.asarray(APPLE_CELLS) == player).all(-1) & (phase == 1)  # [22]
        eaten = on_apple & state.apple_present
        ate = eaten.any()
        value = state.apple_value if self.fix_apple_reward_in_episode else draws.apple_reward
        apple_reward = jnp.where(ate, value, 0.0)
        last_pickup = jnp.where(eaten, phase_t, state.apple_last_pickup)
        present = state.apple_present & ~eaten
        if self.apple_respawn_time > 0:
            back = (last_pickup >= 0) & (phase_t > last_pickup + self.apple_respawn_time)
            present = present | (state.apple_chosen & back & (phase == 1))

        # Phase 2: the door pays once and consumes the key.
        opens = (phase == 2) & (player == jnp.asarray(DOOR_CELL)).all() & has_key
        door_reward = jnp.where(opens, self.final_reward, 0.0)
        has_key = has_key & ~opens

        # The timer: the action that exhausts a phase shows the next phase's first frame.
        lengths = jnp.asarray(self.phase_lengths, jnp.int32)
        advance = (phase_t >= lengths[phase]) & (phase < 2)
        next_phase = jnp.minimum(phase + 1, 2)
        state = KeyToDoorState(
            t=t,
            phase=jnp.where(advance, next_phase, phase),
            phase_t=jnp.where(advance, 0, phase_t),
            player=jnp.where(advance, jnp.asarray(PHASE_STARTS)[next_phase], player),
            key_cell=state.key_cell,
            key_visible=state.key_visible & ~pickup,
            has_key=has_key,
            key_pickup_step=key_pickup_step,
            indicator=pickup & ~advance,
            door_opened=state.door_opened | opens,
            apple_chosen=state.apple_chosen,
            apple_present=present,
            apple_last_pickup=last_pickup,
            apple_value=jnp.where(ate, value, state.apple_value),
            apples_eaten=state.apples_eaten + ate.astype(jnp.int32),
            apple_return=state.apple_return + apple_reward,
        )
        done = t >= self.max_episode_steps
        reward = apple_reward + door_reward
        return state, core.transition_or_termination(
            self.observe(state), reward, done, self._extras(state)
        )


# ------------------------------------------------------------------------------- reference


def layout_state(env: KeyToDoor, layout: dict) -> KeyToDoorState:
    """The initial state of a recorded layout (reference README §2, `layout`)."""
    candidates = [tuple(cell) for cell in APPLE_CELLS.tolist()]
    chosen = np.zeros(len(candidates), bool)
    for cell in layout["apple_cells"]:
        chosen[candidates.index(tuple(cell))] = True
    return env.initial_state(
        layout["key_cell"], layout["player_start"], chosen, layout["apple_value"]
    )


@functools.partial(jax.jit, static_argnums=0)
def _replay_episode(env: KeyToDoor, state: KeyToDoorState, actions: jax.Array):
    """Feed `actions` ([T] int32) from `state`; returns the stacked timesteps and players."""

    def step(state, action):
        state, ts = env.transition(state, action, KeyToDoorDraws(state.apple_value))
        return state, (ts, state.player)

    return jax.lax.scan(step, state, actions)[1]


@reference.register_replayer("key_to_door")
def replay_tvt(record: dict):
    """Replay a TVT key_to_door recording (reference README §2) from its injected layout."""
    params = record["params"]
    frames = params["max_frames"]
    env = KeyToDoor(
        phase_lengths=(frames["explore"], frames["distractor"], frames["reward"]),
        apple_reward=params["apple_reward"],
        final_reward=params["final_reward"],
        num_apples=params["num_apples"],
        fix_apple_reward_in_episode=params["fix_apple_reward_in_episode"],
    )
    state, ts = env.reset_from(layout_state(env, record["layout"]))
    first_obs = np.asarray(record["first_obs"]).reshape(WINDOW, WINDOW, 3)
    yield reference.check(-1, "observation", first_obs, ts.observation)
    yield reference.check(-1, "reward", record["first_reward"], ts.reward)
    yield reference.check(-1, "phase", record["first_phase"], ts.extras["phase"])
    yield reference.check(-1, "step_type", core.StepType.FIRST, ts.step_type)
    steps = record["steps"]
    actions = jnp.asarray([s["action"] for s in steps], jnp.int32)  # [T]
    ts, players = jax.device_get(_replay_episode(env, state, actions))
    for k, s in enumerate(steps):
        step_type = core.StepType.LAST if s["last"] else core.StepType.MID
        obs = np.asarray(s["obs"]).reshape(WINDOW, WINDOW, 3)
        yield reference.check(k, "observation", obs, ts.observation[k])
        yield reference.check(k, "reward", s["reward"], ts.reward[k])
        yield reference.check(k, "step_type", step_type, ts.step_type[k])
        yield reference.check(k, "discount", 0.0 if s["last"] else 1.0, ts.discount[k])
        yield reference.check(k, "phase", s["phase"], ts.extras["phase"][k])
        yield reference.check(k, "has_key", float(s["has_key"]), ts.extras["has_key"][k])
        yield reference.check(
            k, "door_opened", float(s["door_opened"]), ts.extras["door_opened"][k]
        )
        yield reference.check(k, "player", s["player"], players[k])
