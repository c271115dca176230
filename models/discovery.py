"""What an OpenAI-compatible server serves: `GET /v1/models`, with the context limit
when the server reports one (vLLM's `max_model_len`). llama_cpp.server names a model
by the full path of its file, so a model is also found by that file's base name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePath

from engine.types import EngineInputError

LIST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServedModel:
    id: str
    max_model_len: int | None = None

    @property
    def short_name(self) -> str:
        """The id, or a served file's base name ('/m/x.Q4_1.gguf' -> 'x.Q4_1.gguf')."""
        return PurePath(self.id).name if self.id.lower().endswith(".gguf") else self.id

    def answers_to(self, name: str) -> bool:
        short = self.short_name
        return name in (self.id, short, short.removesuffix(".gguf"))


def served_models(url: str, api_key_env: str | None = None) -> list[ServedModel]:
    """Every model the server at `url` lists; one line when it cannot be asked."""
    import openai

    key = os.environ.get(api_key_env, "") if api_key_env else "none"
    client = openai.OpenAI(
        base_url=url, api_key=key or "none", max_retries=0, timeout=openai.Timeout(LIST_TIMEOUT_S)
    )
    try:
        listed = client.models.list().data
    except openai.AuthenticationError:
        raise EngineInputError(f"{url} refused the API key; set it with --api-key-env VAR") from None
    except openai.APIError as exc:
        reason = str(getattr(exc, "message", "") or exc).splitlines()[0]
        raise EngineInputError(f"cannot list the models {url} serves ({reason})") from None
    finally:
        client.close()
    return [ServedModel(m.id, _int_or_none(getattr(m, "max_model_len", None))) for m in listed]


def find_served(served: list[ServedModel], name: str) -> ServedModel | None:
    return next((m for m in served if m.answers_to(name)), None)


def _int_or_none(value) -> int | None:
    return value if isinstance(value, int) and value > 0 else None
