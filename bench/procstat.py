"""CPU time of a process, read from /proc (Linux): what the bench's per-request CPU figures use."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) process `pid` has used so far; 0 where unknown."""
    try:
        # The fields after the command name (which may hold spaces) start at the last ')'.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
