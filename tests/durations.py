"""Write tests/durations.json (seconds per test file, longest first) from a pytest log run with ``--durations=0``:
``make test-durations``. ``tests/conftest.py`` runs the longest files first from it."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

LINE = re.compile(r"^\s*([\d.]+)s (?:call|setup|teardown)\s+tests/([^:\s]+)::")
#: files under this many seconds are left out (their order does not matter)
MIN_SECONDS = 5


def file_seconds(log: str) -> dict[str, int]:
    """Seconds per test file (setup, call and teardown summed), longest first, files under MIN_SECONDS left out."""
    seconds: Counter[str] = Counter()
    for line in log.splitlines():
        match = LINE.match(line)
        if match:
            seconds[match.group(2)] += float(match.group(1))
    if not seconds:
        raise SystemExit("no '--durations=0' lines in the log: run pytest with --durations=0")
    return {name: round(s) for name, s in seconds.most_common() if s >= MIN_SECONDS}


if __name__ == "__main__":
    out = Path(__file__).with_name("durations.json")
    table = file_seconds(sys.stdin.read())
    out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"{out}: {len(table)} files, {sum(table.values()):,} s in all")
