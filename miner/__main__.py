"""``python -m miner``: the same as the ``miner`` command."""

from miner.cli import cli

if __name__ == "__main__":
    cli()
