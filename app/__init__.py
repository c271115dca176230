"""Gradio UI. Builds on sessions/ and engine/; nothing imports app/."""
