"""``miner eval``: how often a model's diff turns a held-out red build green.

    diffs.py  the diff in a model's reply (fenced, bare, with prose around it)
    ask.py    the model asked each episode's train.jsonl question
    score.py  per-episode outcomes and the rates of a row
    run.py    the flow: episodes, red states, answers, warm builds, result files

Building reuses ``miner verify``'s engine (``miner.verify``): red states and
warm workers.
"""
