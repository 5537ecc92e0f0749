"""Whatever the bytes (events.md §6): `csat ingest` answers with exit 0, or one line per problem
and exit 1 — never a traceback, never a partial write. Named cases first, then a fuzz."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES, connect

from csat.engine import Engine, IngestFailed

SHEET = ("id,ruleset,period,subject,rater,attitude,response,solution,reason:response\n"
         "p1,plant-50,2026-03,purchasing,workshop-1,满意,不满意,满意,等料三天\n"
         "p2,plant-50,2026-03,purchasing,workshop-2,满意,满意,满意,\n")


def ingest_lines(cli, path: Path, expect: int):
    r = cli("ingest", str(path), expect=expect)
    assert "Traceback" not in r.stderr
    return r


def test_a_utf16_tab_separated_sheet_as_excel_saves_unicode_text(cli, tmp_path):
    path = tmp_path / "unicode-text.csv"
    path.write_bytes(SHEET.replace(",", "\t").encode("utf-16"))
    assert ingest_lines(cli, path, 0).stdout.startswith("3 appended")  # 2 responses and the implicit adoption
    (row,) = cli.json("scores", "--period", "2026-03")
    assert row["subject"] == "purchasing" and row["responses"] == 2


def test_one_invalid_byte_in_a_utf8_sheet_is_one_line_naming_the_line(cli, tmp_path):
    data = SHEET.encode("utf-8")
    at = data.index("等料".encode()) + 1
    path = tmp_path / "damaged.csv"
    path.write_bytes(data[:at] + b"\xff" + data[at:])
    r = ingest_lines(cli, path, 1)
    assert r.stderr.splitlines()[0].startswith(f"{path}:2: not valid UTF-8: byte 0x") and "CSV UTF-8" in r.stderr
    assert len(r.stderr.splitlines()) == 2


@pytest.mark.parametrize("name", ["book.csv", "book.jsonl", "book.xlsx"])
def test_an_excel_workbook_is_told_to_be_saved_as_csv(cli, tmp_path, name):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    r = ingest_lines(cli, path, 1)
    assert "save the sheet as CSV UTF-8" in r.stderr.splitlines()[0]


def test_gbk_json_lines_get_a_hint(cli, tmp_path):
    path = tmp_path / "gbk.jsonl"
    path.write_bytes(b"".join((json.dumps(e, ensure_ascii=False) + "\n").encode("gbk") for e in [
        {"type": "unit", "id": "purchasing", "name": "采购部"}, {"type": "unit", "id": "sales", "name": "销售部"}]))
    r = ingest_lines(cli, path, 1)
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"{path}:1: not UTF-8 text") and "GBK/GB18030" in first and "save the file as UTF-8" in first
    assert len(r.stderr.splitlines()) == 2  # one problem for the file, then the summary


def test_utf16_json_lines_are_read(cli, tmp_path):
    path = tmp_path / "u16.jsonl"
    path.write_bytes(json.dumps({"type": "unit", "id": "purchasing", "name": "采购部"}, ensure_ascii=False)
                     .encode("utf-16"))
    assert ingest_lines(cli, path, 0).stdout.startswith("1 appended")


def test_deep_nesting_is_refused_cleanly(cli, tmp_path):
    deep = b'{"type": "adoption", "id": "x", "ruleset": "plant-50", "from": "2026-01", "params": ' + \
        b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}\n"
    answers = b'{"type": "response", "id": "r", "ruleset": "iso-100", "period": "2026-01", "subject": "s", ' \
        b'"answers": {"q": ' + b"[" * 5000 + b"]" * 5000 + b"}}\n"
    path = tmp_path / "deep.jsonl"
    path.write_bytes(deep + answers)
    r = ingest_lines(cli, path, 1)
    lines = r.stderr.splitlines()
    assert lines[0] == f"{path}:1: nested too deeply: an event is a flat object whose values nest a few levels at most"
    assert lines[1].startswith(f"{path}:2: ")


def test_a_duplicate_key_is_an_error_naming_the_key(cli, tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"type": "response", "id": "r1", "ruleset": "iso-100", "period": "2026-01", "subject": "s", '
                    '"answers": {"quality": 30, "quality": 10, "delivery": 20, "service": 15, "after_sales": 20, '
                    '"price": 15}}\n{"type": "unit", "id": "u", "name": "a", "name" : "b"}\n', encoding="utf-8")
    r = ingest_lines(cli, path, 1)
    assert r.stderr.splitlines()[:2] == [
        f"{path}:1: key `quality` appears twice in one JSON object (expected each key once; a parser would "
        "silently keep the last)",
        f"{path}:2: key `name` appears twice in one JSON object (expected each key once; a parser would "
        "silently keep the last)"]


def test_a_duplicate_column_in_a_sheet(cli, tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text(SHEET.replace("solution", "response"), encoding="utf-8")
    assert "column `response` appears twice" in ingest_lines(cli, path, 1).stderr


# -- the fuzz ----------------------------------------------------------------------------------------

VALID = (EXAMPLES / "plant-50.jsonl").read_bytes().splitlines()[:12]
SHEET_BYTES = SHEET.encode("utf-8")


def _mutate(data: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    for kind, at, blob in ops:
        at = at % (len(data) + 1)
        if kind == 0:      # insert
            data = data[:at] + blob + data[at:]
        elif kind == 1:    # delete
            data = data[:at] + data[at + len(blob):]
        else:              # overwrite
            data = data[:at] + blob + data[at + len(blob):]
    return data


SPICE = st.sampled_from([b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\xd6\xd0", b"[" * 3000, b"{\"a\": " * 3000,
                         b"\"type\": \"unit\", ", b"\n", b"\r\n", b",", b"\t", b"\"", b"\\", b"N/A", b"1e999",
                         b"-0", b"\xe2\x80\xa8", b"PK\x03\x04", b"\"id\": \"x\", \"id\": \"y\", ",
                         b"9" * 5000, b"1" * 4400 + b".5", b"\xc2\x85", b"\x0b", b"\x1e"])
BLOBS = st.one_of(st.binary(max_size=40), SPICE)
OPS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000), BLOBS), max_size=6)


def _json_values():
    return st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                    max_size=4), max_leaves=10)


FILES = st.one_of(
    st.binary(max_size=2000),
    OPS.map(lambda ops: _mutate(b"\n".join(VALID) + b"\n", ops)),
    st.lists(st.dictionaries(st.sampled_from(["type", "id", "ruleset", "period", "subject", "answers", "rater",
                                               "response", "reason", "params", "from", "x"]), _json_values(),
                             max_size=8), max_size=5)
    .map(lambda objs: b"".join(json.dumps(o).encode() + b"\n" for o in objs)),
)


def _fuzz(tmp_path: Path, data: bytes, suffix: str) -> None:
    db = tmp_path / "fuzz.db"
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    with Engine.open(db) as engine:
        before = engine.store.max_position()
        try:
            report = engine.ingest([path])
        except IngestFailed as e:
            assert e.problems and all(p.startswith(f"{path}:") and len(p.splitlines()) == 1
                                      for p in e.problems), e.problems
            assert engine.store.max_position() == before  # never a partial write
        else:
            assert engine.store.max_position() == before + report.appended
        engine.scores()  # and the store still answers
    with connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@FUZZ
@given(data=FILES)
def test_fuzz_json_lines(tmp_path, data):
    _fuzz(tmp_path, data, ".jsonl")


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), OPS.map(lambda ops: _mutate(SHEET_BYTES, ops)),
                      OPS.map(lambda ops: _mutate(SHEET.encode("utf-16"), ops)),
                      OPS.map(lambda ops: _mutate(SHEET.encode("gb18030"), ops))))
def test_fuzz_csv_sheets(tmp_path, data):
    _fuzz(tmp_path, data, ".csv")


@FUZZ
@given(data=st.one_of(OPS.map(lambda ops: _mutate(SHEET.replace(",", "\t").encode("utf-16"), ops)),
                      OPS.map(lambda ops: _mutate(b"\n".join(VALID) + b"\n", ops))))
def test_fuzz_text_files_told_apart_by_their_content(tmp_path, data):
    _fuzz(tmp_path, data, ".txt")


@pytest.mark.parametrize("sheet", [
    "id,ruleset,period,subject,rater,attitude,response,solution\np1,plant-50,2026-03,purchasing,w1,满意,{n},满意\n",
    "id,ruleset,form,period,subject,rater,q1,q2,q3,q4\nd1,dealership-cs,sales,2026-03,s1,c1,{n},满意,满意,满意\n"])
@pytest.mark.parametrize("digits", ["9" * 5000, "1" * 4400 + ".5", "-" + "7" * 31])
def test_a_very_long_number_in_a_cell_is_one_line_naming_the_cell(cli, tmp_path, sheet, digits):
    """A 5,000-digit paste (issue 20.21): one line naming the cell, no traceback."""
    path = tmp_path / "long.csv"
    path.write_text(sheet.format(n=digits), encoding="utf-8")
    err = ingest_lines(cli, path, 1).stderr.splitlines()
    column = "response" if "plant" in sheet else "q1"
    assert err[0].startswith(f"{path}:2: column `{column}`: a number of ") and "(expected at most 30)" in err[0]
    assert len(err) == 2 and len(err[0]) < 200


def test_line_breaking_characters_in_the_input_stay_on_one_line(cli, tmp_path):
    """U+2028, U+0085 and the like inside a field name are escaped in the error line (issue 20.24)."""
    path = tmp_path / "breaks.jsonl"
    event = {"type": "response", "id": "x", "ruleset": "iso-100", "period": "2026-03", "subject": "acme",
             "answers": {"quality\u2028price\x85x\u2029y\x0bz\rw": 20}}
    path.write_text(json.dumps(event, ensure_ascii=False) + "\n", encoding="utf-8")
    err = ingest_lines(cli, path, 1).stderr
    assert all(line.startswith((f"{path}:1: ", "csat: ")) for line in err.splitlines()), err  # one problem a line
    assert "quality\\u2028price\\x85x\\u2029y\\x0bz\\rw" in err, err


def test_a_duplicate_key_hidden_behind_an_escaped_quote(cli, tmp_path):
    path = tmp_path / "sly.jsonl"  # the \u0022: adds a `":` to the re-encoded event, balancing the counts
    path.write_bytes(b'{"type": "withdrawal", "id": "w", "response": "r", "reason": "x\\u0022:", "reason": "y"}\n')
    assert "key `reason` appears twice" in cli("ingest", str(path), expect=1).stderr
