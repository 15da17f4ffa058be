"""Device binding's user-agent families are pinned: they feed the keyed digests in tokens."""

from __future__ import annotations

import pytest

from sessionstore._engine.binding import ua_family
from sessionstore.demo_app.useragent import parse

CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
SAMSUNG = (
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
)
CHROMEOS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("agent", "family", "label"),
    [
        (CHROME_LINUX, ("Chrome", "Linux"), "Chrome 156 on Linux"),
        (SAMSUNG, ("Chrome", "Android"), "Samsung Internet 23 on Android 13"),
        (CHROMEOS, ("Chrome", "Linux"), "Chrome 120 on ChromeOS"),
        ("Opera/9.80 (Windows NT 6.1) Presto/2.12", ("Opera", "Windows"), "Opera on Windows"),
        (
            "Mozilla/5.0 (Linux; Android; K) Chrome/ Safari/1",
            ("Chrome", "Android"),
            "Chrome on Android",
        ),
        ("Mozilla/5.0 (iPod touch) Safari/604.1", ("Safari", "iOS"), "Safari on iOS"),
        ("curl/8.5.0", ("curl", "other"), "curl 8 on unknown OS"),
        ("python-requests/2.31.0", ("other", "other"), "Unknown browser on unknown OS"),
    ],
)
def test_families_and_labels_come_from_one_table(
    agent: str, family: tuple[str, str], label: str
) -> None:
    """A version group never decides a match: binding's family is the label's family."""
    assert ua_family(agent) == family
    assert str(parse(agent)) == label
