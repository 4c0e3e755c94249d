"""Schema version 1 of the redgreen dataset, as Arrow schemas.

These are the data contract of ``../shared/docs/design.md``: the snapshotter
writes ``snapshots`` and ``blobs``, the miner writes ``episodes``.  A change
here is a new schema version (a new module ``v2`` and a named migration step),
never an edit in place: other tools read these files with plain DuckDB.

Additive changes within version 1 (readers pass ``union_by_name=true``, so an
older file simply lacks the column and reads it as NULL):

- ``episodes.error_count`` (int32, the last field): how many distinct errors
  (distinct error fingerprints) the episode's red builds reported.
- the LLM describer's columns (``description_status`` to ``llm_tokens_out``).
- ``episodes.verified`` and ``verify_output``: the outcome of ``miner verify``.
- ``episodes.dup_group``: the near-duplicate group of dataset hygiene.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

FILE_ENTRY = pa.struct(
    [
        pa.field("path", pa.string()),
        # M modified, A added, R removed, ? untracked (not ignored)
        pa.field("status", pa.string()),
        # sha256 hex of the working content; null when removed or excluded
        pa.field("blob", pa.string()),
        # sha256 hex of the content in the base revision; null when added
        pa.field("base_blob", pa.string()),
        pa.field("size", pa.int64()),
        # null, or why the content was not kept: excluded, too_large, binary
        pa.field("omitted", pa.string()),
    ]
)

DIAGNOSTIC = pa.struct(
    [
        pa.field("file", pa.string()),
        pa.field("line", pa.int32()),
        pa.field("col", pa.int32()),
        pa.field("severity", pa.string()),
        pa.field("code", pa.string()),
        pa.field("message", pa.string()),
    ]
)

BUILD = pa.struct(
    [
        # green, red, unknown, stale, timeout, error
        pa.field("status", pa.string()),
        # the state the build was computed on
        pa.field("state_id", pa.string()),
        pa.field("command", pa.string()),
        pa.field("exit_code", pa.int32()),
        pa.field("started_at", pa.timestamp("us", tz="UTC")),
        pa.field("finished_at", pa.timestamp("us", tz="UTC")),
        pa.field("output", pa.large_string()),
        pa.field("diagnostics", pa.list_(DIAGNOSTIC)),
    ]
)

SNAPSHOTS = pa.schema(
    [
        pa.field("snapshot_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("host", pa.string()),
        pa.field("user", pa.string()),
        pa.field("workspace", pa.string()),
        pa.field("vcs", pa.string()),
        pa.field("base_rev", pa.string()),
        pa.field("branch", pa.string()),
        pa.field("state_id", pa.string()),
        pa.field("files", pa.list_(FILE_ENTRY)),
        pa.field("diff", pa.large_string()),
        pa.field("lines_added", pa.int32()),
        pa.field("lines_removed", pa.int32()),
        pa.field("build", BUILD),
        # state, build, heartbeat, start, stop, base
        pa.field("reason", pa.string()),
    ]
)

BLOBS = pa.schema(
    [
        pa.field("blob", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("content", pa.large_binary()),
    ]
)

CONTEXT_FILE = pa.struct([pa.field("path", pa.string()), pa.field("content", pa.large_string())])
PROMPT_CANDIDATE = pa.struct(
    [
        pa.field("text", pa.string()),
        pa.field("style", pa.string()),  # "lazy" or "descriptive"
        pa.field("filters", pa.list_(pa.string())),  # prompt filters it fails; empty: usable
    ]
)

EPISODES = pa.schema(
    [
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("host", pa.string()),
        pa.field("user", pa.string()),
        pa.field("workspace", pa.string()),
        pa.field("vcs", pa.string()),
        pa.field("green_before_id", pa.string()),
        pa.field("first_red_id", pa.string()),
        pa.field("red_id", pa.string()),
        pa.field("green_id", pa.string()),
        pa.field("red_started_at", pa.timestamp("us", tz="UTC")),
        pa.field("red_ended_at", pa.timestamp("us", tz="UTC")),
        pa.field("red_seconds", pa.float64()),
        pa.field("red_snapshots", pa.int32()),
        pa.field("error", pa.large_string()),
        pa.field("diagnostics", pa.list_(DIAGNOSTIC)),
        pa.field("error_fingerprint", pa.string()),
        pa.field("fix_diff", pa.large_string()),
        pa.field("fix_lines", pa.int32()),
        pa.field("fix_files", pa.int32()),
        pa.field("break_diff", pa.large_string()),
        pa.field("context", pa.list_(CONTEXT_FILE)),
        pa.field("filters", pa.list_(pa.string())),
        pa.field("kept", pa.bool_()),
        pa.field("description", pa.large_string()),
        pa.field("prompt", pa.string()),
        pa.field("describer", pa.string()),
        pa.field("split", pa.string()),
        # additive: distinct error fingerprints over the episode's red builds
        pa.field("error_count", pa.int32()),
        # additive, the LLM describer: outcome, the error kind it read, every
        # candidate request with the prompt filters it fails, template, tokens
        pa.field("description_status", pa.string()),
        pa.field("failure_reason", pa.string()),
        pa.field("error_kind", pa.string()),
        pa.field("prompt_candidates", pa.list_(PROMPT_CANDIDATE)),
        pa.field("template_version", pa.string()),
        pa.field("llm_tokens_in", pa.int64()),
        pa.field("llm_tokens_out", pa.int64()),
        # additive, replay verification (``miner verify``): reproduced, not_red,
        # not_green, does_not_apply, no_repo (null: not verified), and the
        # verification builds' output
        pa.field("verified", pa.string()),
        pa.field("verify_output", pa.large_string()),
        # additive, dataset hygiene: the near-duplicate group (error fingerprint and
        # normalised fix); one episode of a group is kept, the others fail ``duplicate``
        pa.field("dup_group", pa.string()),
    ]
)
