"""Checks of the machine and the libraries the playground runs on (`launch.py doctor`)."""
