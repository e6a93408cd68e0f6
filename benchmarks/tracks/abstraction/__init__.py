"""The abstraction track: its experiments, evaluations and report section."""
