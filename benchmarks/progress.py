"""Progress and ETA over the programs of a command (`tracks run`, `tracks regenerate`)."""

from __future__ import annotations


def _duration(seconds: float) -> str:
    """A short human duration: 45s, 12m05s, 3h07m."""
    seconds = int(round(max(seconds, 0.0)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class OverallProgress:
    """Progress and ETA over every program of a `run` or `regenerate`.

    Budgets come in each experiment kind's own unit (environment steps, Atari frames, training
    FLOPs), so progress is kept per kind and the ETA sums, over kinds, the units left divided by
    the rate measured on that kind so far. A kind not yet timed makes the ETA a lower bound
    ("ETA ≥ ..."), and unknown while nothing is timed. Units restored from a checkpoint count
    as done but not towards any rate, so a resumed command does not promise an ETA it cannot
    keep; neither does a program's first chunk, whose time is mostly XLA compiling it (a short
    run's ETA was 5-10x too long when compile time counted as training). The bar counts
    programs, the running one by its fraction done, and says "compiling" until a program's
    first chunk returns.
    """

    def __init__(
        self,
        budgets: list[tuple[str, int]],
        show: bool,
        clock=None,
        units: dict[str, str] | None = None,
    ):
        """`budgets`: (kind, units of budget) per program; `units`: what a kind's budget counts
        (e.g. "environment steps"), shown after its total (default: "units")."""
        self.units = dict(units or {})
        import time

        from tqdm.auto import tqdm

        self.budgets = [(kind, int(total)) for kind, total in budgets]
        self.totals: dict[str, int] = {}
        for kind, total in self.budgets:
            self.totals[kind] = self.totals.get(kind, 0) + total
        self.done = dict.fromkeys(self.totals, 0)
        self.measured = dict.fromkeys(self.totals, 0)
        self.seconds = dict.fromkeys(self.totals, 0.0)
        self.program_done = [0] * len(self.budgets)
        self.clock = clock or time.monotonic
        self.started = self.clock()
        self.label = ""  # the running program, "(compiling)" until its first chunk returns
        self.bar = tqdm(
            total=len(self.budgets),
            disable=not show or not self.budgets,
            dynamic_ncols=True,
            desc="overall",
            # The status line rides in the `unit` field: tqdm prefixes a postfix with ", ".
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {unit}",
            unit="",
        )

    def callback(self, index: int, resuming: bool, label: str = ""):
        """A `runner.run_group` progress callback for program `index` (shown as `label`); with
        `resuming`, its first call is the part restored from the checkpoint. The chunk after
        that (the first this process compiles) counts as done but is not timed."""
        kind, total = self.budgets[index]
        restored, compiling, last = [resuming], [True], [self.clock()]
        self.label = f"{label} (compiling)" if label else "compiling"
        self._show()

        def update(n: int) -> None:
            now = self.clock()
            self.done[kind] += int(n)
            self.program_done[index] += int(n)
            if restored[0]:
                restored[0] = False
            elif compiling[0]:
                compiling[0] = False
                self.label = label
            else:
                self.measured[kind] += int(n)
                self.seconds[kind] += now - last[0]
            last[0] = now
            self._show()

        return update

    def complete(self, index: int, label: str = "") -> None:
        """Program `index` finished elsewhere (a Ray task): its whole budget is done. Rates then
        come from the wall time since the start over everything done, so the ETA accounts for
        programs running side by side."""
        kind, total = self.budgets[index]
        self.done[kind] += total - self.program_done[index]
        self.program_done[index] = total
        self.measured[kind] = self.done[kind]
        self.seconds[kind] = self.clock() - self.started
        self.label = f"{label} done" if label else ""
        self._show()

    def _show(self) -> None:
        """The bar counts programs, each running one by its fraction done."""
        self.bar.n = sum(
            min(d / t, 1.0) if t else 1.0
            for d, (_, t) in zip(self.program_done, self.budgets, strict=True)
        )
        self.bar.unit = f"{self.label}: {self.status()}" if self.label else self.status()
        self.bar.refresh()

    def eta(self) -> tuple[float | None, list[str]]:
        """(seconds left over the timed kinds or None if none is, kinds left and not timed)."""
        seconds, untimed, timed = 0.0, [], False
        for kind, total in self.totals.items():
            left = total - self.done[kind]
            if left <= 0:
                continue
            if self.measured[kind] == 0 or self.seconds[kind] <= 0:
                untimed.append(kind)
                continue
            seconds += left * self.seconds[kind] / self.measured[kind]
            timed = True
        if not timed and untimed:
            return None, untimed
        return seconds, untimed

    def timing(self) -> str:
        seconds, untimed = self.eta()
        if seconds is None:
            left = "ETA unknown"
        elif untimed:
            left = f"ETA ≥ {_duration(seconds)}: {', '.join(untimed)} not timed yet"
        else:
            left = f"ETA {_duration(seconds)}"
        return f"[{_duration(self.clock() - self.started)} elapsed, {left}]"

    def status(self) -> str:
        parts = []
        for kind, total in self.totals.items():
            share = 100.0 * self.done[kind] / total if total else 100.0
            parts.append(f"{kind} {share:.1f}% of {total:,} {self.units.get(kind, 'units')}")
        return "; ".join(parts) + " " + self.timing()

    def line(self) -> str:
        finished = sum(d >= t for d, (_, t) in zip(self.program_done, self.budgets, strict=True))
        return f"overall {finished}/{len(self.budgets)} programs; {self.status()}"

    def write(self, text: str) -> None:
        if self.bar.disable:
            print(text, flush=True)
        else:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
