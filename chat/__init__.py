"""The chat service: one headless turn (place images and documents, fit the context,
save the question, stream and save the answer, report usage) behind every front end,
the page (app/), the CLI (launch.py) and the OpenAI-compatible API (api/). No Gradio
here; builds on sessions/ (the store) and engine/ (the models)."""
