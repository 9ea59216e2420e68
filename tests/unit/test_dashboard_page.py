"""The dashboard page is self-contained: it works with no internet."""

from __future__ import annotations

import re
from importlib.resources import files


def test_dashboard_loads_nothing_from_elsewhere() -> None:
    """No script, stylesheet, font or image comes from another host; the page polls /status itself."""
    page = files("hub.api").joinpath("dashboard.html").read_text(encoding="utf-8")

    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(http" not in page
    assert 'fetch("/status"' in page
    assert "<svg" in page  # the lag chart is drawn by hand, no charting library
