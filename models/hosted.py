"""What a model on an OpenAI-compatible server (a hosted provider above all) lets one
request carry, in words for `launch.py models` and the page's model info, and whether
its key is there. The key itself is read only when a request is made
(engine/openai_compat.py) and never leaves this process otherwise."""

from __future__ import annotations

import os

from engine.spec import ModelSpec


def key_set(spec: ModelSpec) -> bool:
    """Whether the variable the model's key lives in is set (True when none is needed)."""
    return not spec.api_key_env or bool(os.environ.get(spec.api_key_env))


def limits_line(spec: ModelSpec) -> str:
    """'context 131,072 · 5 images · 4 MB of images · 33.2 MP an image · key $GROQ_API_KEY set'"""
    parts = [f"context {spec.n_ctx:,}"]
    if spec.max_images is not None:
        parts.append(f"{spec.max_images} image{'s' if spec.max_images != 1 else ''} a request")
    if spec.max_image_bytes is not None:
        parts.append(f"{spec.max_image_bytes / 1e6:g} MB of images a request")
    if spec.max_image_pixels is not None:
        parts.append(f"{spec.max_image_pixels / 1e6:.1f} MP an image")
    if spec.max_output_tokens is not None:
        parts.append(f"answers up to {spec.max_output_tokens:,} tokens")
    if spec.api_key_env:
        parts.append(f"key ${spec.api_key_env} {'set' if key_set(spec) else 'not set'}")
    return " · ".join(parts)
