"""Speed of the ideal observer's backends on the released evaluation set (docs/abstraction.md,
"Compiled backend"): the numbers there come from this script.

    python -m benchmarks.perf.ideal_observer_backends nodes --potions 6 7 --episodes 0 1 2 3
    python -m benchmarks.perf.ideal_observer_backends episodes --episodes 0 1 2 --workers 2

`nodes`: the first decision of trial 1 with `potions` potions, Python `Search`, compiled without
shortcuts (the same nodes) and compiled with them; checks the three choose the same action with
the same value and prints nodes, seconds and nodes/s. `episodes`: whole 12-potion episodes with
the compiled backend (`io_episodes.play_released`), seconds and nodes per trial. Pin the process
(`taskset`) and say what else ran on the machine when you quote the numbers.
"""

from __future__ import annotations

import argparse
import time

from baselines.alchemy import ideal_observer_compiled as ioc
from baselines.alchemy import io_episodes
from baselines.alchemy import observer as iob

CONFIGS = (("python", False), ("compiled", False), ("compiled", True))  # backend, shortcuts


def first_decisions(potions, episodes) -> None:
    from environments.symbolic_alchemy import SymbolicAlchemy
    from environments.symbolic_alchemy import evaluation_set as es

    data = es.load()
    ioc.kernel_tables()  # built (and the kernels loaded) outside the timing
    for k in potions:
        env = SymbolicAlchemy(level=es.LEVEL, potions_per_trial=k)
        for e in episodes:
            host = iob.HostEpisode(env, es.LEVEL, *data.episodes(e))
            iob.IdealObserver(es.LEVEL).decide(host.obs, host.mask)  # warm the storage
            rows = []
            for backend, shortcuts in CONFIGS:
                observer = iob.IdealObserver(es.LEVEL, backend=backend, shortcuts=shortcuts)
                start = time.perf_counter()
                d = observer.decide(host.obs, host.mask)
                rows.append((backend, shortcuts, d.nodes, time.perf_counter() - start, d))
            if len({(r[4].action, r[4].value) for r in rows}) != 1:
                raise AssertionError(f"backends disagree at {k} potions, episode {e}: {rows}")
            print(
                f"{k} potions, episode {e}: "
                + "; ".join(
                    f"{b}{' +shortcuts' if s else ''} {n} nodes {t:.3f} s {n / t:,.0f} nodes/s"
                    for b, s, n, t, _ in rows
                ),
                flush=True,
            )


def whole_episodes(episodes, workers: int) -> None:
    start = time.perf_counter()
    results = io_episodes.play_released(episodes, workers=workers)
    for r in results:
        print(
            f"episode {r.episode}: {sum(r.trial_seconds):.1f} s, return "
            f"{sum(r.trial_returns):.0f}; per trial s {[round(s, 2) for s in r.trial_seconds]} "
            f"nodes {list(r.trial_nodes)} returns {[int(x) for x in r.trial_returns]}"
        )
    print(f"{len(results)} episodes on {workers} workers: {time.perf_counter() - start:.1f} s wall")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("nodes", "episodes"))
    parser.add_argument("--potions", type=int, nargs="+", default=[6, 7])
    parser.add_argument("--episodes", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.what == "nodes":
        first_decisions(args.potions, args.episodes)
    else:
        whole_episodes(args.episodes, args.workers)


if __name__ == "__main__":
    main()
