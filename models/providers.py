"""`--provider NAME`: the hosted preset NAME names, or the one preset of provider NAME.
Where that is not enough (NAME has several presets, or --model names a model NAME has no
preset for) the provider's own /v1/models is asked, and either the model it serves runs
with the provider's URL, key and limits, or the one-line refusal names the Llama 4 models
it does serve. A provider whose presets are all retired (assets/models.toml) says when
and why."""

from __future__ import annotations

import os
from dataclasses import replace

from engine.spec import ModelSpec
from errors import UserError


def choose(
    specs: dict[str, ModelSpec],
    provider: str,
    model: str | None = None,
    endpoint: str | None = None,
    retired: dict[str, dict] | None = None,
) -> ModelSpec:
    """The model `--provider provider [--model model] [--endpoint endpoint]` means."""
    if provider in specs and specs[provider].provider:
        return specs[provider]
    mine = [spec for spec in specs.values() if spec.provider == provider]
    if not mine:
        raise UserError(_unknown(specs, provider, retired or {}))
    if model:
        preset = next((s for s in mine if model in (s.name, s.remote_model)), None)
        if preset is not None:
            return preset
        return _served_model(mine[0], provider, model, endpoint)
    if len(mine) == 1:
        return mine[0]
    names = ", ".join(spec.name for spec in mine)
    listed = _llama4_listed(mine[0], endpoint)
    also = f"; it lists these Llama 4 models now: {', '.join(listed)} (--model ID)" if listed else ""
    raise UserError(f"{provider} serves several presets ({names}); name one with --provider{also}")


def _served_model(base: ModelSpec, provider: str, model: str, endpoint: str | None) -> ModelSpec:
    """A model the provider lists but no preset names: its URL, key and limits, the
    served id, and the context the listing reports when it reports one."""
    from models.discovery import find_served

    served = _listing(base, endpoint)
    found = find_served(list(served), model)
    if found is None:
        listed = [m.short_name for m in served if _is_llama4(m.id)]
        offer = f"its Llama 4 models: {', '.join(listed)}" if listed else "it lists no Llama 4 model"
        raise UserError(f"{provider} does not serve {model!r}; {offer}")
    context = found.max_model_len or base.n_ctx
    llama = _is_llama4(found.id)
    return replace(
        base,
        name=model,
        label=f"{model} on {provider}",
        remote_model=found.id,
        n_ctx=context,
        max_context=max(context, base.max_context if llama else context),
        family="llama4" if llama else "",
        licence=base.licence if llama else "",
        has_vision=llama,
    )


def _llama4_listed(base: ModelSpec, endpoint: str | None) -> list[str]:
    """The Llama 4 models the provider lists now; [] when it cannot be asked."""
    try:
        return [m.short_name for m in _listing(base, endpoint) if _is_llama4(m.id)]
    except UserError:
        return []


def _listing(base: ModelSpec, endpoint: str | None):
    from models.availability import shared_checker

    url = (endpoint or base.endpoint).rstrip("/")
    if base.api_key_env and not os.environ.get(base.api_key_env):
        raise UserError(f"{base.provider} needs its key in ${base.api_key_env} to list its models")
    listing = shared_checker().listing(url, base.api_key_env)
    if listing.models is None:
        why = listing.error or f"HTTP {listing.status}"
        raise UserError(f"cannot list the models {base.provider} serves at {url} ({why})")
    return listing.models


def _unknown(specs: dict[str, ModelSpec], provider: str, retired: dict[str, dict]) -> str:
    known = ", ".join(sorted({spec.provider for spec in specs.values() if spec.provider}))
    gone = next((e for n, e in retired.items() if provider in (n, e.get("provider"))), None)
    if gone is not None:
        return f"{provider}: retired ({gone['retired']}); hosted providers now: {known} (`launch.py models`)"
    return f"unknown provider {provider!r}; hosted providers: {known} (`launch.py models`)"


def _is_llama4(model_id: str) -> bool:
    from models.availability import is_llama4_id

    return is_llama4_id(model_id)
