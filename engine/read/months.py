"""A rule-set month scored by the replay, as plain data — in this process, or in a pool of
forked processes (``csat rebuild --jobs N``).

Once the log is folded, rule-set months are independent: each reads its responses' final states,
the adoptions and the org chart, and yields its credits, its remedy cases and its ``scores``
rows. :func:`score_month` computes them without touching the store; the replay writes them,
month by month in the one order, so a rebuild with any number of processes writes the same rows
in the same order (the same bytes).

The pool forks after the fold: the workers inherit the rule sets, the adoptions and the org chart
(nothing of them is pickled) and receive each month's stored states as bytes. A rule set that
reads complaint cases (``uses_cases``) is scored in this process: its cases are in the open
write transaction, which another process cannot see.
"""
from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from ..errors import RuleSetFailed, StoreError
from ..processes import end_with_parent
from ..scoring.guard import checked_figures, guarded, under_adoption
from ..scoring.ruleset import Counted, Credit, Excluded, MonthInput, ResponseState, RuleSet
from .apply import credits_of, remedy_rows
from .readmodel import Adoptions, Org, decode_state
from .settle import exclusion, late_exclusion, score_rows

NO_CASES: tuple[list[Any], list[Any]] = ([], [])


@dataclass
class MonthScored:
    """What scoring one rule-set month yields, for the replay to write."""

    ruleset: str
    month: str
    #: ``rm_credits`` rows, in the order the responses were read
    credits: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    #: the subjects credited (their sequences and roll-ups follow)
    subjects: list[str] = field(default_factory=list)
    #: remedy cases to upsert and drop, and the rule sets whose ``remedy`` failed
    remedies: tuple[list[Any], list[Any], list[RuleSetFailed]] = ([], [], [])
    #: per subject scored: its ``scores`` rows, or the failure that leaves it unscored
    groups: list[tuple[str, list[tuple[Any, ...]] | RuleSetFailed]] = field(default_factory=list)
    #: crediting failed: the rule set is parked and nothing of the month is written
    parked: RuleSetFailed | None = None
    #: subjects with responses credited under an adoption (the progress shown)
    scored: int = 0


def score_month(rs: RuleSet, month: str, states: list[ResponseState], adoptions: Adoptions, org: Org,
                due: str | None, cases: Callable[[str], tuple[list[Any], list[Any]]],
                usable: Callable[[str], bool]) -> MonthScored:
    """Credit a rule-set month's responses (in log order) with the final org chart and the
    adoption in force, split them into counted and excluded per subject, and score each subject.
    ``due``: late answers after it count for nothing; ``cases(subject)``: the subject's cases and
    those below it (``MonthInput.cases``, ``.below``)."""
    out = MonthScored(rs.id, month)
    adoption = adoptions.in_force(rs.id, month)
    inputs: dict[str, MonthInput] = {}
    subjects: dict[str, None] = {}
    for state in states:
        try:
            credits = credits_of(rs, state, adoptions, org)
        except RuleSetFailed as e:  # the rule set is parked; it is re-credited when it works again
            return MonthScored(rs.id, month, parked=e)
        if len(credits) > 1:  # (the default, and most: one credit, its subject)
            credits = sorted(set(credits), key=lambda c: (c.role, c.via, c.subject))
        why = exclusion(state) or late_exclusion(state, due)
        for c in credits:
            out.credits.append((rs.id, c.subject, month, state.id, c.role, c.via))
            subjects[c.subject] = None
            if adoption is None:
                continue
            inp = inputs.get(c.subject)
            if inp is None:
                found_cases, below = cases(c.subject)
                inp = inputs[c.subject] = MonthInput(rs.id, c.subject, month, adoption, [], [],
                                                     org.kind(c.subject, month), found_cases, below=below)
            credit = Credit(c.subject, c.role, c.via)
            if why is None:
                inp.counted.append(Counted(state, credit))
            elif state.withdrawn is not None:
                inp.withdrawn.append(Excluded(state, why, credit))
            else:
                inp.excluded.append(Excluded(state, why, credit))
    out.subjects, out.scored = list(subjects), len(inputs)
    out.remedies = remedy_rows({rs.id: rs}, usable, states, adoptions)
    for subject, inp in inputs.items():
        if not (inp.counted or inp.excluded):
            continue
        where = f"scoring {subject} {month}"
        try:
            figures = checked_figures(rs, where, guarded(rs, where, rs.score_month, inp, None), inp.params)
            out.groups.append((subject, score_rows(rs, month, subject, "month", inp.adoption, figures)))
        except RuleSetFailed as e:  # left dirty: the next catch-up tries again
            out.groups.append((subject, under_adoption(e, inp.adoption)))
    return out


# -- the pool -------------------------------------------------------------------------------

#: what the workers inherit when the pool forks: the rule sets, adoptions and org chart
_INHERITED: dict[str, Any] = {}


def _score_in_worker(task: tuple[str, str, list[bytes], str | None]) -> MonthScored:
    ruleset, month, blobs, due = task
    rulesets, adoptions, org = _INHERITED["rulesets"], _INHERITED["adoptions"], _INHERITED["org"]
    states = [decode_state(b) for b in blobs]
    return score_month(rulesets[ruleset], month, states, adoptions, org, due, lambda s: NO_CASES, lambda r: True)


def can_fork() -> bool:
    """Whether this platform forks processes (Linux, macOS): the pool needs no pickled rule sets."""
    return "fork" in multiprocessing.get_all_start_methods()


class MonthPool:
    """``jobs`` forked worker processes scoring rule-set months (:func:`score_month`), their
    results given back in the order asked. At most ``2 × jobs`` months are in flight, so memory
    holds a few months at a time however long the log.

    :param rulesets: the rule sets, by id; ``adoptions``, ``org``: the folded log's.
    """

    def __init__(self, jobs: int, rulesets: dict[str, RuleSet], adoptions: Adoptions, org: Org):
        _INHERITED.update(rulesets=rulesets, adoptions=adoptions, org=org)
        self.window = 2 * jobs
        self.executor = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"),
                                            initializer=end_with_parent, initargs=(os.getpid(),))

    def scored(self, tasks: Iterable[tuple[str, str, list[bytes], str | None]]) -> Iterator[MonthScored]:
        """Each task's :class:`MonthScored`, in the order of ``tasks`` (read lazily)."""
        pending: collections.deque[Any] = collections.deque()
        try:
            for task in tasks:
                pending.append(self.executor.submit(_score_in_worker, task))
                if len(pending) >= self.window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise StoreError("a scoring process ended abruptly (out of memory, or killed); nothing was changed: "
                             "run it again with --jobs 1") from None

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        _INHERITED.clear()


@contextlib.contextmanager
def month_pool(jobs: int, rulesets: dict[str, RuleSet], adoptions: Adoptions, org: Org) -> Iterator[MonthPool | None]:
    """A :class:`MonthPool` of ``jobs`` processes for the block — or None (one process: ``jobs``
    is 1, or this platform does not fork) — closed afterwards."""
    if jobs <= 1 or not can_fork():
        yield None
        return
    pool = MonthPool(jobs, rulesets, adoptions, org)
    try:
        yield pool
    finally:
        pool.close()


def default_jobs() -> int:
    """The machine's cores (those this process may use)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)
