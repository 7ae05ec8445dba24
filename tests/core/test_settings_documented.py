"""Every setting dicomsvc reads from the environment is documented in the README ("Document every
setting"): a new ``env_*("NAME", ...)`` in dicomsvc/settings.py without a README entry fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_setting_is_named_in_the_readme():
    source = (ROOT / "dicomsvc" / "settings.py").read_text()
    names = set(re.findall(r'\benv_[a-z]+\(\s*"([A-Z][A-Z0-9_]*)"', source))
    assert len(names) > 50, "the settings reader changed shape; update this test"
    readme = (ROOT / "README.md").read_text()
    undocumented = sorted(name for name in names if f"`{name}`" not in readme)
    assert undocumented == []
