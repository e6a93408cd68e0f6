"""The compute track: its experiments, evaluations and report section."""
