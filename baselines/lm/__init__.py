"""Byte-level language models for the `compute` track: dense transformer and Mixture-of-Depths."""
