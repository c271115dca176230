"""Documents above the engine: reading and rendering them (`reader`, PyMuPDF, imported
lazily), the part a message holds for one (`parts`), and fitting a conversation with
documents into a model's context (`context`). The engine only ever sees text and images."""
