"""The README's configuration table lists exactly the extension's options, with their
defaults: an option added without documentation (or documented and gone) fails here."""

from __future__ import annotations

import re
from pathlib import Path

from jupyter_collab.app import CollabApp

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_options() -> dict[str, str]:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", section, flags=re.MULTILINE)
    return dict(rows)


def test_every_option_is_documented_and_every_documented_option_exists():
    inherited = set(CollabApp.__mro__[1].class_traits(config=True))  # ExtensionApp's own
    assert set(documented_options()) == set(CollabApp.class_traits(config=True)) - inherited


def test_documented_defaults_match():
    traits = CollabApp.class_traits(config=True)
    for name, shown in documented_options().items():
        default = traits[name].default_value
        if isinstance(default, bool | int | float) and not isinstance(default, bool):
            number = float(re.sub(r"[^0-9.]", "", shown) or "nan")
            scale = {"KiB": 1024, "MiB": 1024**2, "KB": 1000, "MB": 1000**2}
            unit = next((u for u in scale if shown.strip().endswith(u)), None)
            assert number * (scale[unit] if unit else 1) == default, (name, shown, default)
        elif isinstance(default, bool):
            assert shown.strip() == str(default), (name, shown, default)
        elif isinstance(default, str) and default:
            assert shown.strip().strip('`"') == default, (name, shown, default)
