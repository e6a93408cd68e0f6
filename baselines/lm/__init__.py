"""Byte-level language models for the `compute` track: dense transformer and Mixture-of-Depths,
and their registry (`make_lm`): `dense`, `mod` or a user's `package.module:factory`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import baselines
from baselines.lm.mod import LanguageModel, MoDConfig, build_model
from baselines.lm.transformer import TransformerConfig

# name -> description. Options are the fields of TransformerConfig (and MoDConfig for `mod`).
LM_MODELS: dict[str, str] = {
    "dense": "dense pre-norm decoder (compute spec §2.1)",
    "mod": "Mixture-of-Depths decoder (compute spec §2.2-2.3)",
}
MODEL_OPTIONS = tuple(f.name for f in dataclasses.fields(TransformerConfig))
ROUTING_OPTIONS = tuple(f.name for f in dataclasses.fields(MoDConfig))


def make_lm(name: str, options: Mapping[str, Any] | None = None) -> LanguageModel:
    """The language model `name` (`dense`, `mod` or `package.module:factory`) with `options`."""
    options = dict(options or {})
    if name in LM_MODELS:
        accepted = MODEL_OPTIONS + (ROUTING_OPTIONS if name == "mod" else ())
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for model {name!r}; accepted: {', '.join(accepted)}"
            )
        config = TransformerConfig(**{k: v for k, v in options.items() if k in MODEL_OPTIONS})
        if name == "dense":
            return build_model(config)
        routing = MoDConfig(**{k: v for k, v in options.items() if k in ROUTING_OPTIONS})
        return build_model(config, routing)
    target = baselines.AGENTS.get(name, name)
    if ":" not in target:
        raise ValueError(
            f"unknown language model {name!r}; accepted: {', '.join(LM_MODELS)} "
            "or 'package.module:factory'"
        )
    model = baselines.load_factory(target)(**options)
    if not isinstance(model, LanguageModel):
        raise TypeError(
            f"model factory {name!r} returned {type(model).__name__}, not a LanguageModel"
        )
    return model


__all__ = ["LM_MODELS", "MODEL_OPTIONS", "ROUTING_OPTIONS", "make_lm"]
