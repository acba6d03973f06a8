"""Command-line tools, each run as ``python -m tal_jax.tools.<name> --help``."""
