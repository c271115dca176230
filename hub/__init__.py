"""Getting models onto this machine from Hugging Face (or a mirror at HF_ENDPOINT):
`launch.py pull NAME | --hf REPO[:QUANT]`, and `--hf` on ask and the server.
Imports engine (specs, types), never the reverse."""
