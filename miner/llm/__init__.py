"""The LLM describer: two prompted stages through any OpenAI-compatible server.

    templates   versioned prompt text files and their loader
    inputs      an episode's error, diffs and context, trimmed to a token budget
    answers     the JSON each stage must answer, and a strict parser for it
    cache       answers on disk, keyed by (model, template, inputs)
    client      the ``openai`` client: concurrency, retries, budget, formats, dry run
    describer   both stages for one episode, the prompt filters, a whole batch

Nothing here imports ``openai`` at module level except ``client``, and only
``client`` is imported lazily by the CLI: ``import openai`` costs ~0.4 s.
"""
