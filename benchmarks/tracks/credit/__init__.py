"""The credit track: its experiments, evaluations and report section."""
