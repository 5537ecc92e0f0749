"""Announced results (公示): a rule set's figures of a month as they stood when announced, and what
moved since.

An ``announcement`` event records that a month's figures (all of them, or those under a unit) were
announced: the figures are those published just before the event. They are derived once from the
log — a replay up to that position, of that rule set only — and kept in ``rm_announced``: the log
before an announcement never changes, so neither do they. A figure rescored since (a correction, a
late answer, a new adoption) shows the announced figure beside the current one, the delta, and in
``explain`` the events after the announcement that it read.
"""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from ..read import scoreviews
from ..scoring.numbers import sub
from ..read.readmodel import Org, decode_state
from ..read.snapshots import snapshot

_FIELDS = ("subject", "metric", "score", "grade", "responses")


def announced(conn: Any, ruleset: str | None = None, period: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """(rule set, month) → its latest announcement (``id``, ``date``, ``under``, ``position``),
    of one rule set's month or of all."""
    where = " WHERE ruleset = ? AND period = ?" if ruleset is not None else ""
    rows = conn.execute("SELECT id, ruleset, period, under, date, position FROM rm_announcements" + where
                        + " ORDER BY position", (ruleset, period) if ruleset is not None else ())
    return {(rs, p): {"id": i, "ruleset": rs, "period": p, "under": u, "date": d, "position": pos}
            for i, rs, p, u, d, pos in rows}  # in log order: the latest stays


def announcement(ruleset: str, period: str, date: str, *, under: str | None = None, id: str | None = None,
                 note: str | None = None) -> dict[str, Any]:
    """The ``announcement`` event (ingest format) of a rule set's month announced on ``date``; its id
    defaults to ``RULESET-PERIOD-DATE``."""
    return {"type": "announcement", "id": id or f"{ruleset}-{period}-{date}", "ruleset": ruleset, "period": period,
            "date": date, **({"under": under} if under else {}), **({"note": note} if note else {})}


def latest(conn: Any, ruleset: str, period: str) -> dict[str, Any] | None:
    """The latest announcement of a rule set's month, or None."""
    return announced(conn, ruleset, period).get((ruleset, period))


def _moved(now: Decimal | None, was: Decimal | None) -> Decimal | None:
    return sub(now, was) if now is not None and was is not None else None


def figures(engine: Any, ann: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(subject, metric) → the announced figure (``score``, ``grade``, ``responses``)."""
    conn = engine.store.conn
    rows = conn.execute("SELECT subject, metric, score, grade, responses FROM rm_announced WHERE announcement = ?",
                        (ann["id"],)).fetchall()
    if not rows:  # derived once: the published figures just before the announcement
        with snapshot(engine.projection, ann["position"] - 1, only=[ann["ruleset"]]) as private:
            found = engine._score_rows(ann["ruleset"], ann["period"], None, None, private.conn)
            found = engine._under(found, ann["under"], Org.load(private.conn), private.conn) if ann["under"] else found
        rows = [(r["subject"], r["metric"], None if r["score"] is None else str(r["score"]), r["grade"],
                 r["responses"]) for r in found] or [("", "", None, None, 0)]  # "" marks: derived, none announced
        with engine.store.try_write_lock() as locked:
            if locked:
                conn.executemany("INSERT OR IGNORE INTO rm_announced VALUES (?, ?, ?, ?, ?, ?)",
                                 [(ann["id"], *r) for r in rows])
    return {(s, m): {"score": None if score is None else Decimal(score), "grade": grade, "responses": n}
            for s, m, score, grade, n in rows if s}


def events_since(conn: Any, ann: dict[str, Any], subjects: set[str]) -> dict[str, list[str]]:
    """subject → the ids of the events after the announcement that bear on its figures of the
    announced month, in log order: responses credited to it recorded since, their corrections and
    withdrawals, complaints filed against it for the month, and adoptions of the rule set in force
    for the month."""
    after, ruleset, period = ann["position"], ann["ruleset"], ann["period"]
    found: dict[str, dict[int, str]] = {s: {} for s in subjects}
    for subject, blob in conn.execute(
            "SELECT c.subject, r.state FROM rm_credits c JOIN rm_responses r ON r.id = c.response "
            "WHERE c.ruleset = ? AND c.period = ?", (ruleset, period)):
        if subject not in found:
            continue
        state = decode_state(bytes(blob))
        marks = [(state.position, state.id), *((a.position, a.id) for a in state.corrections)]
        if state.withdrawn is not None:
            marks.append((state.withdrawn.position, state.withdrawn.id))
        found[subject].update((pos, i) for pos, i in marks if pos > after)
    for subject, i, pos in conn.execute("SELECT subject, id, position FROM rm_cases WHERE period = ? AND position > ? "
                                        "AND (ruleset IS NULL OR ruleset = ?)", (period, after, ruleset)):
        if subject in found:
            found[subject][pos] = i
    adopted = [(pos, i) for i, pos in conn.execute("SELECT id, position FROM rm_adoptions WHERE ruleset = ? AND "
                                                   "position > ? AND from_ <= ?", (ruleset, after, period))]
    return {s: [i for _, i in sorted([*marks.items(), *adopted])] for s, marks in found.items()}


def beside(engine: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score rows with, where their month was announced and the figure moved since, the announced
    figure (``announced``), the change (``announced_delta``), the day (``announced_on``) and the
    events since that bear on it (``announced_events``, ids in log order); these keys are on every
    row, None where nothing moved (:func:`csat.engine.read.scoreviews.complete`: ``kind`` too)."""
    months = announced(engine.store.conn)
    if not months:  # one query when nothing was announced: the common read pays nothing more
        return scoreviews.complete(rows)
    cache: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
    moved: dict[tuple[str, str], set[str]] = defaultdict(set)
    out = []
    for r in rows:
        key = (r["ruleset"], r["period"])
        ann = months.get(key)
        if ann is not None and key not in cache:
            cache[key] = figures(engine, ann)
        figs = cache.get(key, {})
        was = figs.get((r["subject"], r["metric"])) if ann else None
        if was is not None and (was["score"], was["grade"]) != (r["score"], r["grade"]):
            r = {**r, "announced": was["score"], "announced_delta": _moved(r["score"], was["score"]),
                 "announced_on": ann["date"]}
            moved[key].add(r["subject"])
        out.append(r)
    for key, subjects in moved.items():  # what moved them: one read per announced month
        since = events_since(engine.store.conn, months[key], subjects)
        for r in out:
            if "announced_on" in r and (r["ruleset"], r["period"]) == key:
                r["announced_events"] = since[r["subject"]]
    return scoreviews.complete(out)


def revision(engine: Any, x: dict[str, Any]) -> dict[str, Any] | None:
    """For an explanation of a month announced since which the figure moved: the day, the figure
    announced, the change, and the events read that came after the announcement."""
    ann = latest(engine.store.conn, x["ruleset"], x["period"])
    if ann is None:
        return None
    was = figures(engine, ann).get((x["subject"], x["metric"]))
    if was is None or (was["score"], was["grade"]) == (x["score"], x["grade"]):
        return None
    return {"on": ann["date"], "announcement": ann["id"], "score": was["score"], "delta": _moved(x["score"], was["score"]),
            "events": [e for e in x["events"] if e["position"] > ann["position"]]}


def as_announced(engine: Any, ruleset: str | None, period: str) -> list[dict[str, Any]]:
    """The figures of ``period`` exactly as announced (the latest announcement of each rule set), with
    ``announced_on`` and ``announcement``; ``kind`` and the other announced keys (None) as every
    score row has them."""
    conn = engine.store.conn
    names = [ruleset] if ruleset else [r for (r,) in conn.execute(
        "SELECT DISTINCT ruleset FROM rm_announcements WHERE period = ? ORDER BY ruleset", (period,))]
    org = Org.load(conn)
    out = []
    for rs in names:
        ann = latest(conn, rs, period)
        if ann is None:
            continue
        for (subject, metric), f in sorted(figures(engine, ann).items()):
            out.append({"ruleset": rs, "period": period, "subject": subject, "metric": metric, **f,
                        "announced_on": ann["date"], "announcement": ann["id"]})
    return scoreviews.complete(scoreviews.with_names(out, org))
