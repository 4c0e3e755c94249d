"""``snapshotter status``: what the agent is doing, whether or not it runs.

The running agent writes ``status.json`` every few seconds; this module
reads it, checks that the agent behind it is alive (the data directory's
lock is held), and falls back to the config and the spool's memory of the
last recorded rows when no agent runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapshotter import control
from snapshotter.config import load_config
from snapshotter.errors import RedgreenError
from snapshotter.spool import Spool


def gather_status() -> dict[str, Any]:
    report: dict[str, Any] = {"running": False}
    saved = control.read_json(control.state_dir() / control.STATUS_FILE)
    pause = control.current_pause()
    report["paused"] = pause is not None
    report["paused_until"] = (
        (pause.until.isoformat() if pause.until else "resume") if pause else None
    )
    if saved is not None:
        data_dir = Path(saved.get("data_dir", ""))
        holder = control.AgentLock.holder(data_dir)
        if holder is not None and holder in (saved.get("pid"), -1):
            report.update(saved)
            report["running"] = True
            report["paused"] = pause is not None
            return report
        report["last_seen"] = saved.get("updated_at")
    try:
        config = load_config()
    except RedgreenError as exc:
        report["config_error"] = str(exc)
        report["workspaces"] = []
        return report
    report["data_dir"] = str(config.data_dir)
    workspaces: list[dict[str, Any]] = []
    spool = _open_spool(config.data_dir)
    try:
        for workspace in config.workspaces:
            entry: dict[str, Any] = {"workspace": str(workspace.path)}
            memory = spool.memory(str(workspace.path)) if spool else None
            if memory is not None:
                entry["last_snapshot_at"] = memory.ts.isoformat()
                entry["state_id"] = memory.state_id
            workspaces.append(entry)
    finally:
        if spool is not None:
            spool.close()
    report["workspaces"] = workspaces
    return report


def _open_spool(data_dir: Path) -> Spool | None:
    if not (data_dir / "spool").exists():
        return None
    try:
        return Spool.open(data_dir)
    except RedgreenError:
        return None


def _ago(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "never"
    when = datetime.fromisoformat(stamp)
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 120:
        span = f"{seconds} s"
    elif seconds < 7200:
        span = f"{seconds // 60} min"
    else:
        span = f"{seconds // 3600} h"
    return f"{when.strftime('%H:%M:%S')} ({span} ago)"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def render_status(report: dict[str, Any]) -> str:
    now = datetime.now(UTC)
    lines: list[str] = []
    if report.get("running"):
        started = datetime.fromisoformat(report["started_at"])
        up = int((now - started).total_seconds())
        cpu = report.get("cpu_seconds", 0)
        memory = _size(report.get("rss_bytes", 0))
        spool = _size(report.get("spool_bytes", 0))
        lines.append(
            f"agent: running (pid {report['pid']}), up {up // 3600} h {up % 3600 // 60} min, "
            f"CPU {cpu:.1f} s, memory {memory}, "
            f"spool {spool} ({report.get('pending_rows', 0)} rows to roll)"
        )
    else:
        seen = report.get("last_seen")
        lines.append("agent: not running" + (f" (last seen {seen})" if seen else ""))
    if report.get("paused"):
        until = report.get("paused_until")
        lines.append(f"recording paused until {'you resume' if until == 'resume' else until}")
    if report.get("storage_error"):
        stopped = report.get("storage_stopped") or "recording stopped"
        lines.append(f"{stopped}: {report['storage_error']}")
    if report.get("config_error"):
        lines.append(f"config: {report['config_error']}")
    if report.get("data_dir"):
        lines.append(f"data: {report['data_dir']}")
    rows = [("WORKSPACE", "VCS", "LAST SNAPSHOT", "BUILD", "FILES", "TODAY")]
    for ws in report.get("workspaces", []):
        if ws.get("error"):
            gone = not ws.get("vcs") or not Path(ws["workspace"]).is_dir()
            rows.append(
                (
                    ws["workspace"],
                    ws.get("vcs") or "-",
                    _ago(ws.get("last_snapshot_at"), now),
                    "missing" if gone else "error",
                    "-",
                    ws["error"][:40],
                )
            )
            continue
        today = (
            f"{ws.get('rows_today', 0)} rows, {_size(ws.get('bytes_today', 0))}"
            if "rows_today" in ws
            else "-"
        )
        rows.append(
            (
                ws["workspace"],
                ws.get("vcs") or "-",
                _ago(ws.get("last_snapshot_at"), now),
                ("building" if ws.get("building") else ws.get("build_status")) or "-",
                str(ws.get("files_changed", "-")),
                today,
            )
        )
    if len(rows) == 1:
        lines.append("no workspace watched: add one with `snapshotter init PATH`")
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
    return "\n".join(lines)
