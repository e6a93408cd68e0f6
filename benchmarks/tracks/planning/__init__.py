"""The planning track: its experiments, evaluations and report section."""
