"""The README's consumer quickstart is the example the integration tests run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_readme_shows_the_tested_consumer_example() -> None:
    """The Python block under 'Consume a topic' is examples/consumer_quickstart.py, verbatim."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Consume a topic", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)

    assert block is not None
    assert block.group(1) == (ROOT / "examples" / "consumer_quickstart.py").read_text(encoding="utf-8")
