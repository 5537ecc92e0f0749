"""The README's embedding example runs as written and prints what it says."""
from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_readme_embedding_example(tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Embedding"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "750.00 default"
    assert "score (初始得分) = 750" in lines


def test_readme_names_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/csat demo" in text and ".venv/bin/pytest" in text
    assert ".venv/bin/pytest" in (ROOT / ".ci" / "run").read_text()
