"""The command line: `launch.py` serves the page; `models`, `ask`, `doc`, `compare` and
`sessions` script the same chat service and store. One module per command."""
