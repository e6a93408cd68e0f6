"""Episode GIFs: one episode of an environment played by an agent, drawn from the full state.

`render(env, agent, seed, ...)` plays one episode in a jitted rollout (`lax.scan` over
`auto_reset_step`, cut at the first LAST timestep) and draws every frame from the environment's
*state*, not its observation, so the whole board is visible even where the agent sees a 5×5
crop or a one-hot label. Learning agents act with freshly initialised parameters: a GIF shows
the policy their initialisation gives, not a trained one.

Atari Skiing is stepped on the host by envpool, so it has its own rollout: the agent acts on the
observation it trains on (4 stacked 84×84 grayscale frames) while a second envpool environment
with the same seed, fed the same actions, yields the full-resolution colour screen (210×160 RGB).
Both are deterministic per seed; the rollout checks that their rewards agree at every step. A
Skiing episode lasts about a thousand agent steps, so by default only every few steps is drawn
(`every`, at most `MAX_HOST_FRAMES` frames; the first and the last frames always are).

Frames are drawn with Pillow (which matplotlib brings) in a fixed palette, text in matplotlib's
bundled DejaVu Sans without anti-aliasing, so the same (environment, config, agent, seed) gives a
byte-identical GIF on any machine whose rollout gives the same numbers.

A renderer is registered per environment name with `@register_renderer(name, action_names)`;
it turns one frame's state into a board image and the environment-specific caption lines.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import baselines
import environments
from benchmarks import rollout as rollout_lib
from benchmarks import store
from environments.core import Environment, StepType, TimeStep, auto_reset_step

DEFAULT_OUT = Path("renders")

# ------------------------------------------------------------------------------------ colours

WHITE = (255, 255, 255)
INK = (25, 25, 25)
MUTED = (110, 110, 110)
GRID = (190, 190, 190)
FLOOR = (238, 238, 238)
BLUE = (31, 119, 180)
LIGHT_BLUE = (190, 215, 238)
GREEN = (44, 160, 44)
RED = (214, 39, 40)
BROWN = (140, 86, 75)
ORANGE = (255, 127, 14)


def _palette() -> list[tuple[int, int, int]]:
    """Every colour a frame may use (frames are drawn without anti-aliasing)."""
    from environments import key_to_door

    fixed = [WHITE, INK, MUTED, GRID, FLOOR, BLUE, LIGHT_BLUE, GREEN, RED, BROWN, ORANGE]
    return fixed + [tuple(int(v) for v in c) for c in key_to_door.PALETTE]


@functools.cache
def _palette_image(extra: tuple[tuple[int, int, int], ...] = ()) -> Image.Image:
    """A P-mode image holding the fixed palette, then `extra` colours (at most 256 in all)."""
    colours = list(dict.fromkeys(_palette() + list(extra)))[:256]  # unique, in order
    flat = [v for c in colours for v in c]
    image = Image.new("P", (1, 1))
    image.putpalette(flat + flat[:3] * (256 - len(colours)))
    return image


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), size)


def _canvas(width: int, height: int, background=WHITE) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # no anti-aliasing: every pixel stays a palette colour
    return image, draw


def _centred_text(draw: ImageDraw.ImageDraw, box, text: str, size: int, fill=INK) -> None:
    x0, y0, x1, y1 = box
    draw.text(((x0 + x1) / 2, (y0 + y1) / 2), text, fill=fill, font=_font(size), anchor="mm")


# ------------------------------------------------------------------------------------ rollout


@dataclasses.dataclass(frozen=True)
class Episode:
    """One episode as host arrays, frame 0 being the reset. F = episode steps + 1."""

    states: Any  # the environment state pytree (Skiing: {"screen": [F, 210, 160, 3]}), [F, ...]
    timesteps: TimeStep  # [F, ...]
    actions: np.ndarray  # int32 [F]; the action that led to frame i (-1 for frame 0)
    returns: np.ndarray  # float64 [F]; rewards summed up to and including frame i
    steps: np.ndarray  # int64 [F]; the episode step of frame i (0, 1, 2, ... unless subsampled)

    @property
    def num_frames(self) -> int:
        return int(self.actions.shape[0])

    def state(self, i: int) -> Any:
        return jax.tree.map(lambda x: x[i], self.states)

    def subsample(self, every: int) -> Episode:
        """Every `every`-th frame, always keeping the first and the last (returns stay exact)."""
        if every == 1:
            return self
        keep = np.unique(np.r_[np.arange(0, self.num_frames, every), self.num_frames - 1])
        take = lambda x: np.asarray(x)[keep]
        return Episode(
            states=jax.tree.map(take, self.states),
            timesteps=jax.tree.map(take, self.timesteps),
            actions=take(self.actions),
            returns=take(self.returns),
            steps=take(self.steps),
        )


def _config_key(config: dict[str, Any] | None) -> str:
    return json.dumps(config or {}, sort_keys=True)


@functools.lru_cache(maxsize=16)
def _rollout_fn(env: Environment, agent_name: str, agent_config: str, num_steps: int):
    """The jitted rollout of `num_steps` steps for (env, agent); compiled once per argument set."""
    agent = baselines.make_agent(agent_name, env.specs(), **json.loads(agent_config))

    def rollout(key: jax.Array):
        k_reset, k_agent, key = jax.random.split(key, 3)
        state, ts = env.reset(k_reset)
        agent_state = agent.init(k_agent, env.specs(), 1)

        def act(agent_state, ts, key):  # one environment, seen as a batch of one
            batched = jax.tree.map(lambda x: jnp.asarray(x)[None], ts)  # [1, ...]
            action, agent_state, _ = agent.act(agent_state, batched, key)
            return action[0].astype(jnp.int32), agent_state

        def env_step(state, ts, action, key):
            return auto_reset_step(env, state, ts, action, key)

        def record(extra, step):
            return extra, (step.env_state, step.next_timestep, step.action)

        _, (states, tss, actions) = rollout_lib.play(
            act, env_step, agent_state, state, ts, key, num_steps, record
        )
        prepend = lambda first, rest: jnp.concatenate([jnp.asarray(first)[None], rest])
        return (
            jax.tree.map(prepend, state, states),  # [num_steps + 1, ...]
            jax.tree.map(prepend, ts, tss),
            prepend(jnp.int32(-1), actions),
        )

    return jax.jit(rollout)


def rollout(
    env: Environment,
    agent: str = "random",
    seed: int = 0,
    agent_config: dict[str, Any] | None = None,
    max_steps: int | None = None,
) -> Episode:
    """Play one episode (or its first `max_steps` steps) of `env` with a fresh `agent`."""
    limit = env.max_episode_steps
    if max_steps is not None:
        limit = max_steps if limit is None else min(limit, max_steps)
    if limit is None:
        raise ValueError(f"environment {env.id} has no episode bound; pass --max-steps")
    fn = _rollout_fn(env, agent, _config_key(agent_config), int(limit))
    states, tss, actions = jax.device_get(fn(jax.random.PRNGKey(seed)))
    last = np.flatnonzero(np.asarray(tss.step_type)[1:] == StepType.LAST)
    frames = int(last[0]) + 2 if last.size else int(limit) + 1  # up to and including LAST
    cut = lambda x: np.asarray(x)[:frames]
    rewards = cut(tss.reward).astype(np.float64)
    return Episode(
        states=jax.tree.map(cut, states),
        timesteps=jax.tree.map(cut, tss),
        actions=cut(actions),
        returns=np.cumsum(rewards),
        steps=np.arange(frames),
    )


MAX_HOST_FRAMES = 150  # default cap on the frames of a host-stepped (Skiing) GIF
SKIING_SCREEN = {"img_height": 210, "img_width": 160, "gray_scale": False, "stack_num": 1}


def skiing_rollout(
    env: Environment,
    agent: str = "random",
    seed: int = 0,
    agent_config: dict[str, Any] | None = None,
    max_steps: int | None = None,
) -> Episode:
    """One Skiing episode (or its first `max_steps` steps), with every full colour screen.

    The agent acts on `env`'s own observations (a `SkiingPool`); a twin envpool environment
    with the same seed and settings except the picture (`SKIING_SCREEN`) receives the same
    actions and yields the screens. Raises RuntimeError if the twins' rewards ever differ.
    """
    import envpool

    from environments.skiing import ENVPOOL_TASK

    limit = env.max_episode_steps if max_steps is None else min(env.max_episode_steps, max_steps)
    policy = baselines.make_agent(agent, env.specs(), **(agent_config or {}))
    act = jax.jit(policy.act)
    pool = env.make_batch(1, seed)
    screen_pool = envpool.make(ENVPOOL_TASK, **{**env.envpool_kwargs(1, seed), **SKIING_SCREEN})
    try:
        ts = pool.reset()
        screen = np.asarray(screen_pool.reset()[0])[0]  # [3, 210, 160]
        key = jax.random.PRNGKey(seed)
        key, k_init = jax.random.split(key)
        state = policy.init(k_init, env.specs(), 1)
        screens, timesteps, actions = [screen], [ts], [-1]
        for step in range(1, limit + 1):
            key, k_act = jax.random.split(key)
            action, state, _ = act(state, ts, k_act)
            action = np.asarray(action, np.int32)  # [1]
            ts = pool.step(action)
            screen_obs, screen_reward, *_ = screen_pool.step(action)
            if float(screen_reward[0]) != float(ts.reward[0]):
                raise RuntimeError(
                    f"skiing render: the screen environment's reward {float(screen_reward[0])} "
                    f"differs from the agent's {float(ts.reward[0])} at step {step}"
                )
            screens.append(np.asarray(screen_obs)[0])
            timesteps.append(ts)
            actions.append(int(action[0]))
            if int(ts.step_type[0]) == StepType.LAST:
                break
    finally:
        pool.close()
        close = getattr(screen_pool, "close", None)
        if close is not None:
            close()
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x)[0] for x in xs]), *timesteps)
    return Episode(
        states={"screen": np.stack(screens).transpose(0, 2, 3, 1)},  # [F, 210, 160, 3]
        timesteps=stacked,
        actions=np.asarray(actions, np.int32),
        returns=np.cumsum(np.asarray(stacked.reward, np.float64)),
        steps=np.arange(len(actions)),
    )


# ---------------------------------------------------------------------------------- renderers

# A renderer yields, per frame, the board image and its environment-specific caption lines.
FrameSource = Callable[[Any, Episode], Iterator[tuple[Image.Image, list[str]]]]


@dataclasses.dataclass(frozen=True)
class Renderer:
    frames: FrameSource
    action_names: tuple[str, ...]
    # The episode source: None for JAX environments (`rollout`), else a host-stepped rollout
    # with `rollout`'s signature (Skiing: `skiing_rollout`).
    host_rollout: Callable[..., Episode] | None = None


RENDERERS: dict[str, Renderer] = {}


def register_renderer(
    env_name: str,
    action_names: Sequence[str],
    host_rollout: Callable[..., Episode] | None = None,
):
    def decorator(fn: FrameSource) -> FrameSource:
        RENDERERS[env_name] = Renderer(fn, tuple(action_names), host_rollout)
        return fn

    return decorator


def renderable() -> list[str]:
    return sorted(RENDERERS)


def _grid_board(fills: np.ndarray, cell: int, line=GRID) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A board of `fills` ([R, C, 3] uint8 cell colours), `cell` pixels a side, with grid lines."""
    rows, cols = fills.shape[:2]
    pixels = np.repeat(np.repeat(fills, cell, axis=0), cell, axis=1)  # [R*cell, C*cell, 3]
    image = Image.fromarray(np.ascontiguousarray(pixels, np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"
    for r in range(rows + 1):
        y = min(r * cell, rows * cell - 1)
        draw.line([(0, y), (cols * cell - 1, y)], fill=line)
    for c in range(cols + 1):
        x = min(c * cell, cols * cell - 1)
        draw.line([(x, 0), (x, rows * cell - 1)], fill=line)
    return image, draw


def _cell_box(row: int, col: int, cell: int, inset: int = 0) -> tuple[int, int, int, int]:
    return (
        col * cell + inset,
        row * cell + inset,
        (col + 1) * cell - inset,
        (row + 1) * cell - inset,
    )


@register_renderer("key_to_door", ("N", "S", "W", "E"))
def _key_to_door(env, episode: Episode):
    """The current phase's 7×11 board in pycolab's colours (the env's own `render`), sprites
    lettered: P player, K key, D door, i indicator, a apple."""
    from environments import key_to_door as ktd

    boards = np.asarray(jax.jit(jax.vmap(env.render))(episode.states))  # [F, 7, 11] colour index
    letters = {ktd.PLAYER: "P", ktd.KEY: "K", ktd.DOOR: "D", ktd.INDICATOR: "i", ktd.APPLE: "a"}
    phase_names = ("explore", "distractor", "reward")
    cell = 30
    for i in range(episode.num_frames):
        s = episode.state(i)
        image, draw = _grid_board(ktd.PALETTE[boards[i]], cell, line=MUTED)
        for (r, c), index in np.ndenumerate(boards[i]):
            if int(index) in letters:
                _centred_text(draw, _cell_box(r, c, cell), letters[int(index)], 14)
        phase = int(s.phase)
        yield (
            image,
            [
                f"phase {phase} {phase_names[phase]}: frame {int(s.phase_t)}/"
                f"{env.phase_lengths[phase]}",
                f"has_key {'yes' if s.has_key else 'no'}   door opened "
                f"{'yes' if s.door_opened else 'no'}   apples eaten {int(s.apples_eaten)}"
                f" (value {float(s.apple_value):g})",
            ],
        )


@register_renderer("delayed_catch", ("left", "stay", "right"))
def _delayed_catch(env, episode: Episode):
    """The 7×7 canvas: the fruit (red disc) falling onto the basket (brown bar, bottom row)."""
    from environments import delayed_catch as dc

    cell = 36
    fills = np.broadcast_to(np.array(FLOOR, np.uint8), (dc.GRID, dc.GRID, 3))
    for i in range(episode.num_frames):
        s = episode.state(i)
        image, draw = _grid_board(fills, cell)
        row, col, basket = int(s.fruit_row), int(s.fruit_col), int(s.basket)
        x0, y0, x1, y1 = _cell_box(dc.GRID - 1, basket, cell, inset=3)
        draw.rectangle((x0, y0 + cell // 2, x1, y1), fill=BROWN)
        landed = row == dc.GRID - 1
        caught = landed and col == basket
        draw.ellipse(_cell_box(row, col, cell, inset=8), fill=GREEN if caught else RED)
        outcome = ("  caught!" if caught else "  missed") if landed else ""
        yield (
            image,
            [
                f"game {int(s.game_index) + 1}/{env.runs}   fruit row {row}{outcome}",
                f"catches {int(s.catches)}   (paid only on the final step)",
            ],
        )


@register_renderer("memory_planning_game", ("Up", "Down", "Left", "Right", "Collect"))
def _memory_planning_game(env, episode: Episode):
    """The n×n torus (edges wrap; y grows upwards) with every cell's label, the agent (blue
    disc) and the goal (green frame). The agent sees only its own cell's and the goal's labels."""
    n = env.maze_size
    cell = max(28, min(56, 320 // n))
    fills = np.broadcast_to(np.array(FLOOR, np.uint8), (n, n, 3))
    for i in range(episode.num_frames):
        s = episode.state(i)
        image, draw = _grid_board(fills, cell)
        box = lambda xy, inset=0: _cell_box(n - 1 - int(xy[1]), int(xy[0]), cell, inset)
        draw.rectangle(box(s.goal, 2), outline=GREEN, width=4)
        draw.ellipse(box(s.position, cell // 4), fill=BLUE)
        labels = np.asarray(s.labels).reshape(n, n)  # [x, y]
        for x in range(n):
            for y in range(n):
                on_agent = x == int(s.position[0]) and y == int(s.position[1])
                _centred_text(
                    draw, box((x, y)), str(int(labels[x, y])), 11, WHITE if on_agent else MUTED
                )
        steps_in_task = int(s.t) - int(s.task_start_t)
        yield (
            image,
            [
                f"task {int(s.task_index)}: {steps_in_task} steps, shortest path "
                f"{int(s.sp_at_task_start)} moves + Collect",
                f"goals collected {int(s.tasks_completed)}   (torus: moves off an edge wrap)",
            ],
        )


@register_renderer("chain", ("0", "1"))
def _chain(env, episode: Episode):
    """The chain as a strip of L cells (filled up to t; the last one green if has == need, red
    otherwise, once reached), with need and has boxes; the first action sets has."""
    length = env.length
    cell = max(6, min(36, 640 // length))
    height = 36
    for i in range(episode.num_frames):
        s = episode.state(i)
        t, need, has = int(s.t), int(s.need), int(s.has)
        image, draw = _canvas(length * cell + 1, height + 28)
        for k in range(length):
            x0, x1 = k * cell, (k + 1) * cell
            fill = FLOOR
            if k < t:
                fill = LIGHT_BLUE
            if k == t - 1:
                fill = BLUE
            if k == length - 1 and t == length:
                fill = GREEN if has == need else RED
            draw.rectangle((x0, 0, x1, height), fill=fill, outline=GRID)
        shown = t <= 1 or env.reveal == "always"
        chosen = f"{has}" if t >= 1 else f"{has} (decoy until the first action)"
        _centred_text(
            draw, (0, height, length * cell, height + 28), f"need {need}   has {chosen}", 13
        )
        yield (
            image,
            [
                f"t {t}/{length}   need/has {'shown in' if shown else 'hidden from'} the "
                f"observation (reveal={env.reveal})",
                "final reward +1 if has == need, else -1; earlier rewards: ±1 noise",
            ],
        )


@register_renderer("skiing", ("NOOP", "RIGHT", "LEFT"), host_rollout=skiing_rollout)
def _skiing(env, episode: Episode):
    """The full 210×160 colour screen, doubled; the missed gates are counted at the end."""
    for i in range(episode.num_frames):
        screen = np.asarray(episode.states["screen"][i], np.uint8)  # [210, 160, 3]
        image = Image.fromarray(np.repeat(np.repeat(screen, 2, axis=0), 2, axis=1), "RGB")
        gates = float(episode.timesteps.extras["missed_gates"][i])
        last = int(episode.timesteps.step_type[i]) == StepType.LAST
        truncated = bool(episode.timesteps.extras["truncated"][i])
        if not last:
            end = "course not finished yet: -500 per missed gate is paid on the final step"
        elif truncated:
            end = f"truncated at {env.max_episode_steps} steps (missed gates unknown)"
        else:
            end = f"course finished: missed gates {gates:g} (-500 each, in the final reward)"
        yield (
            image,
            [
                f"frame_skip {env.frame_skip}: {int(episode.steps[i]) * env.frame_skip} "
                "emulator frames so far; -6/-7 per step of elapsed time",
                end,
            ],
        )


# ------------------------------------------------------------------------------------- frames

MARGIN = 10
TEXT = 14  # caption font size
LINE = 19  # caption line height
MIN_WIDTH = 460


def _compose(
    board: Image.Image, title: str, lines: list[str], width: int, height: int, palette: Image.Image
) -> Image.Image:
    image, draw = _canvas(width, height)
    draw.text((MARGIN, MARGIN), title, fill=INK, font=_font(TEXT))
    top = MARGIN + LINE + 4
    image.paste(board, ((width - board.width) // 2, top))
    y = top + board.height + 8
    for line in lines:
        draw.text((MARGIN, y), line, fill=INK, font=_font(TEXT))
        y += LINE
    return image.quantize(palette=palette, dither=Image.Dither.NONE)


def frames(env: Environment, episode: Episode, title: str) -> list[Image.Image]:
    """Every frame of `episode` as a palette image: title, board, caption."""
    renderer = renderer_for(env)
    boards = list(renderer.frames(env, episode))
    bound = env.max_episode_steps
    out = []
    for i, (board, lines) in enumerate(boards):
        step = int(episode.steps[i])
        a = int(episode.actions[i])
        action = "-" if a < 0 else renderer.action_names[a] if a < len(renderer.action_names) else a
        reward = float(episode.timesteps.reward[i])
        step_type = ("FIRST", "MID", "LAST")[int(episode.timesteps.step_type[i])]
        common = (
            f"step {step}/{bound if bound is not None else '?'} {step_type}   action {action}   "
            f"reward {reward:+g}   return {episode.returns[i]:g}"
        )
        out.append((board, [common, *lines]))
    texts = [title] + [line for _, lines in out for line in lines]
    text_width = max(_font(TEXT).getlength(t) for t in texts)
    width = max(MIN_WIDTH, max(b.width for b, _ in out), int(np.ceil(text_width))) + 2 * MARGIN
    n_lines = max(len(lines) for _, lines in out)
    height = MARGIN + LINE + 4 + max(b.height for b, _ in out) + 8 + n_lines * LINE + MARGIN
    palette = _palette_image(_board_colours([b for b, _ in out]))
    return [_compose(b, title, lines, width, height, palette) for b, lines in out]


def _board_colours(boards: list[Image.Image]) -> tuple[tuple[int, int, int], ...]:
    """Colours of the boards outside the fixed palette (Atari screens), most frequent first.

    A Skiing screen uses a few dozen colours, so the GIF keeps them exactly; past 256 in all the
    rarest are mapped to their nearest palette colour.
    """
    fixed = set(_palette())
    counts: dict[tuple[int, int, int], int] = {}
    for board in boards:
        pixels = np.asarray(board.convert("RGB"), np.uint32).reshape(-1, 3)  # [H * W, 3]
        packed = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
        values, n = np.unique(packed, return_counts=True)
        for value, k in zip(values.tolist(), n.tolist(), strict=True):
            colour = (value >> 16, (value >> 8) & 255, value & 255)
            if colour not in fixed:
                counts[colour] = counts.get(colour, 0) + k
    return tuple(sorted(counts, key=lambda c: (-counts[c], c)))


def gif_bytes(images: list[Image.Image], fps: float) -> bytes:
    """An endlessly looping GIF; the last frame is held three times as long."""
    duration = max(20, int(round(1000 / fps)))
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=[duration] * (len(images) - 1) + [3 * duration],
        loop=0,
        optimize=False,
    )
    return buf.getvalue()


def renderer_for(env: Environment) -> Renderer:
    if env.name not in RENDERERS:
        raise ValueError(
            f"no renderer for environment {env.name!r}; environments with one: "
            f"{', '.join(renderable())}"
        )
    return RENDERERS[env.name]


def render(
    env_name: str,
    agent: str = "random",
    seed: int = 0,
    out: Path = DEFAULT_OUT,
    env_config: dict[str, Any] | None = None,
    agent_config: dict[str, Any] | None = None,
    max_steps: int | None = None,
    fps: float = 8.0,
    every: int | None = None,
) -> tuple[Path, int]:
    """Write `<out>/<env>_<agent>_seed<seed>.gif`; returns its path and number of frames.

    `every` draws only every N-th step (the first and last frames always); by default 1 for
    JAX environments and, for host-stepped ones (Skiing), the smallest N that keeps the GIF
    within `MAX_HOST_FRAMES` frames. Every name and value is checked before the rollout runs,
    so a typo writes nothing.
    """
    env = environments.make(env_name, **_tuples(env_config or {}))
    renderer = renderer_for(env)
    baselines.make_agent(agent, env.specs(), **(agent_config or {}))  # fail early on bad names
    if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) < 1):
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if every is not None and (isinstance(every, bool) or int(every) < 1):
        raise ValueError(f"every must be a positive integer, got {every!r}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    play = renderer.host_rollout or rollout
    episode = play(env, agent, seed, agent_config, max_steps)
    if every is None:
        every = 1 if renderer.host_rollout is None else -(-episode.num_frames // MAX_HOST_FRAMES)
    episode = episode.subsample(int(every))
    title = f"{env.id}   agent {agent}   seed {seed}"
    if every > 1:
        title += f"   (every {every} steps)"
    images = frames(env, episode, title)
    path = Path(out) / f"{env.name}_{store.safe_name(agent)}_seed{seed}.gif"
    store.atomic_write_bytes(path, gif_bytes(images, fps))
    return path, len(images)


def _tuples(value: Any) -> Any:
    """JSON lists as tuples, so a configuration stays hashable (environments are jit-static)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value
