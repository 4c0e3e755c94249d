"""``miner verify``: replay each episode's red state and fix in a scratch copy.

states.py   the red state of an episode, from the dataset and its repository
revision.py a revision's tree exported into a directory (git or hg, read-only)
scratch.py  a scratch tree that remembers what it changed and puts it back
workers.py  warm workers: one scratch copy each, moved from state to state
verify.py   the verify flow and its outcome per episode, written back to OUT
"""
