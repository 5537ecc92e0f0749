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


def test_the_documented_scores_columns_are_the_table_s(engine):
    """README "The read models are documented tables": every column of `scores` is listed, on both
    backends, and the score is exact decimal text."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The read models are documented tables"):]
    section = section[:section.index("\n## ")]
    documented = set(re.findall(r"`(\w+)`", "".join(line.split("|")[1] for line in section.splitlines()
                                                   if line.startswith("| `"))))
    from conftest import EXAMPLES
    engine.ingest([EXAMPLES / "iso-100.jsonl"])
    engine.catch_up()
    cursor = engine.store.conn.execute("SELECT * FROM scores LIMIT 1")
    row = cursor.fetchone()
    columns = [d[0] for d in cursor.description]
    assert set(columns) == documented
    assert isinstance(dict(zip(columns, row))["score"], str)
