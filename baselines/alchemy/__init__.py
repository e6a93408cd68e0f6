"""Non-learning baselines of the abstraction track (Symbolic Alchemy, spec §2 and §4.1).

- `posterior`: the exact posterior over chemistries (flat bitmask, O(K) updates, §1.7 marginals);
- `heuristics`: observation-only policies (random heuristic, cash-only, uniform over valid);
- `oracle`: the search oracle (knows the chemistry; exact per-trial optimum), agent id `oracle`
  through `baselines.oracle`;
- `ideal_observer`: the exact Bayesian search (§2.3) and its budgeted approximation;
- `observer`: `IdealObserver`, which plays episodes with either search (`io_backend`), and the
  recorded-decision check (I2);
- `ideal_observer_compiled`, `io_kernels`: its compiled search (`io_backend="compiled"`, numba;
  the same values and choices as the Python search);
- `io_episodes`: released evaluation episodes of the ideal observer over worker processes;
- `reference_search`: plain exhaustive expectimax, the slow reference for value identity (I1);
- `evaluate`: whole-episode jitted evaluation.

`AGENTS` lists the agent ids and factories for the registry in `baselines/__init__.py`.
"""

AGENTS = {
    "random_heuristic": "baselines.alchemy.heuristics:make_random_heuristic",
    "cash_only": "baselines.alchemy.heuristics:make_cash_only",
    "uniform_valid": "baselines.alchemy.heuristics:make_uniform_valid",
    "ideal_observer": "baselines.alchemy.agent:make_ideal_observer",
}
