"""The OpenAI-compatible API the playground serves on the page's own port:
`GET /v1/models` and `POST /v1/chat/completions`, over the same chat service as the
page and the CLI. FastAPI routes; no Gradio here."""
