"""The README's chat sink samples, rendered by the real sinks.

``python -m tests.readme_samples`` rewrites every block between ``<!-- sample: NAME -->`` and
``<!-- /sample -->`` in README.md; ``tests/test_readme_samples.py`` fails when one is stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from tests.chat_helpers import build_sink
from tests.chat_messages import ALERT

README = Path(__file__).resolve().parents[1] / "README.md"
SAMPLES: dict[str, dict[str, Any]] = {
    "teams": {},
    "teams-messagecard": {"format": "messagecard"},
    "mattermost": {"channel": "soc-alerts"},
    "slack": {},
    "discord": {},
}
BLOCK = re.compile(r"(<!-- sample: ([\w-]+) -->\n)(.*?)(<!-- /sample -->)", re.DOTALL)
WIDTH = 96


def compact_json(value: Any, indent: int = 0) -> str:
    """JSON, indented, with every object or array that fits on one line kept on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(flat) + indent <= WIDTH or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(key, ensure_ascii=False)}: {compact_json(item, indent + 2)}"
            for key, item in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + compact_json(item, indent + 2) for item in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def render_sample(name: str) -> str:
    """The fenced JSON block for one sample."""
    sink_type = name.split("-")[0]
    payload = build_sink(sink_type, **SAMPLES[name]).render(ALERT)
    return "```json\n" + compact_json(payload) + "\n```\n"


def rewrite(text: str) -> str:
    """``text`` with every sample block rendered afresh."""
    return BLOCK.sub(lambda m: m.group(1) + render_sample(m.group(2)) + m.group(4), text)


def samples_in(text: str) -> dict[str, str]:
    """The sample blocks found in ``text``, by name."""
    return {m.group(2): m.group(3) for m in BLOCK.finditer(text)}


def main() -> int:
    """Rewrite README.md in place."""
    text = README.read_text(encoding="utf-8")
    README.write_text(rewrite(text), encoding="utf-8")
    print(f"rewrote {len(samples_in(text))} samples in {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
