"""Raters' personal links to a round's questionnaire, and what a link opens.

A round's assignments (``round`` event) give each rater — or each respondent a round names for a
rater — one link: an unguessable token whose SHA-256 alone is kept (:mod:`csat.engine.app.accounts`).
Making a round's links again revokes the earlier set: one live link per assignment (a rater who
answers through an old link after that finds it gone; their return through the new one is the
assignment's second return — a correction of the first or refused, :mod:`csat.engine.app.returns`).
A link opens its assignment while the round is open and the link not revoked: the rule set and
month, the due date, the subjects to rate (as of the round's org chart) with their names, and
whether the round is anonymous. A named respondent is kept as the round stored it (sealed) and
opened only when a response is recorded.
"""
from __future__ import annotations

from typing import Any

from ..errors import CsatError, NotFound
from ..read.cases import ROUND_SPEC
from ..read.readmodel import decode_state
from .anonymous import Returned
from .rounds import assignments_of


def _round(engine: Any, round_id: str) -> tuple[Any, bool] | None:
    rows = engine.store.conn.execute("SELECT kind, spec FROM rm_rounds WHERE round = ?", (round_id,)).fetchall()
    opened = next((spec for kind, spec in rows if kind == "opened"), None)
    if opened is None:
        return None
    return ROUND_SPEC.decode(opened), any(kind == "closed" for kind, _ in rows)


def round_links(engine: Any, round_id: str, actor: str | None = None) -> list[dict[str, Any]]:
    """New links for every assignment of an open round: ``rater``, ``respondent`` (as the round
    names it, opened) and ``token`` (shown now only); made in one go, one row of the accounts'
    audit trail naming ``actor`` — after the round's earlier live links are revoked in the same
    transaction (one row more, when there were any)."""
    engine.catch_up()
    found = _round(engine, round_id)
    if found is None or found[1]:
        raise NotFound(f"no open round {round_id!r}")
    spec, _ = found
    org = engine.projection.state()[1]
    who: dict[tuple[str, str | None], None] = {}
    for rater, _subject, respondents in assignments_of(spec, org):
        for respondent in respondents or [None]:
            who.setdefault((rater, respondent))
    opener = engine.opener()
    accounts, conn = engine.accounts, engine.accounts.conn
    with accounts._write():  # (one transaction: never two live sets, never none made)
        (earlier,) = conn.execute("SELECT COUNT(*) FROM csat_links WHERE round = ? AND revoked = 0",
                                  (round_id,)).fetchone()
        if earlier and spec.anonymous and _anonymous_returns(engine, spec):
            raise CsatError(f"anonymous round {round_id!r} has returns through its links: links made again "
                            "could return twice, as the store cannot tell which links returned (by design); "
                            "revoke a rater's link instead (csat round links --help)")
        if earlier:
            conn.execute("UPDATE csat_links SET revoked = 1 WHERE round = ? AND revoked = 0", (round_id,))
            accounts._audit(actor, "links.revoke", round_id, links=earlier, why="links made again")
        tokens = accounts.new_links(round_id, list(who), actor=actor)
    return [{"rater": rater, "respondent": opener.text(respondent, "respondent") if respondent else None,
             "token": token} for (rater, respondent), token in zip(who, tokens)]


def _anonymous_returns(engine: Any, spec: Any) -> int:
    """How many returns an anonymous round has had: its month's responses, in the log and held."""
    from .anonymous import held
    (logged,) = engine.store.conn.execute("SELECT COUNT(*) FROM rm_responses WHERE ruleset = ? AND period = ?",
                                          (spec.ruleset, spec.period)).fetchone()
    return int(logged) + held(engine.store, spec.id)


def assignment(engine: Any, token: str) -> dict[str, Any] | None:
    """What a link opens now, or None (unknown, revoked, or its round closed or gone)."""
    link = engine.accounts.link(token)
    if link is None:
        return None
    found = _round(engine, link["round"])  # (a link is made after its round was applied: no catch-up)
    if found is None or found[1]:
        return None
    spec, _ = found
    org = engine.projection.state()[1]
    subjects = [s for r, s, _ in assignments_of(spec, org) if r == link["rater"]]
    opener = engine.opener()  # the respondent in plain: their response is sealed under their own key
    return {"round": spec.id, "ruleset": spec.ruleset, "period": spec.period, "due": spec.due,
            "anonymous": spec.anonymous, "rater": link["rater"],
            "respondent": opener.text(link["respondent"], "respondent") if link["respondent"] else None,
            "subjects": [{"id": s, "name": opener.text(org.name(s, spec.period), "name")} for s in subjects]}


class RaterLinks:
    """Raters' links and their responses (a part of :class:`~csat.engine.app.api.Engine`)."""

    #: raised by :meth:`return_anonymously`: the link returned that subject (and form) already
    Returned = Returned

    def round_links(self, round_id: str, actor: str | None = None) -> list[dict[str, Any]]:
        """New personal links for every assignment of an open round (:func:`round_links`): the
        tokens are returned now and never again; the round's earlier links are revoked (one live
        link per assignment); ``actor`` is named in the accounts' audit trail.

        :raises NotFound: no open round of that id.
        """
        return round_links(self, round_id, actor)

    def rater_assignment(self, token: str) -> dict[str, Any] | None:
        """What a rater's link opens (:func:`assignment`), or None: unknown, revoked, round closed."""
        return assignment(self, token)

    def return_anonymously(self, token: str, events: list[dict[str, Any]]) -> Any:
        """An anonymous link's return: its marks and its events in one write transaction, or
        nothing (:func:`csat.engine.app.anonymous.return_anonymously`); the report.

        :raises Returned: the link returned one of these subjects (and forms) already.
        """
        from .anonymous import return_anonymously
        return return_anonymously(self, token, events)

    def anonymous_returned(self, token: str) -> list[tuple[str, str | None]]:
        """The (subject, form) pairs an anonymous link has returned."""
        from .anonymous import returned_of
        return returned_of(self, token)

    def release_anonymous(self) -> int:
        """Append every anonymous response still held back, shuffled; how many."""
        from .anonymous import release_all
        return release_all(self)

    def response(self, response_id: str) -> dict[str, Any] | None:
        """A response as it stands now (after corrections; personal fields opened), or None:
        ``id``, ``ruleset``, ``period``, ``subject``, ``rater``, ``respondent``, ``answers``,
        ``reasons``, ``comment``, ``recorded``, ``corrections`` (their ids), ``withdrawn``."""
        return self.responses([response_id]).get(response_id)

    def responses(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Several responses as :meth:`response` gives each, by id (those in the log)."""
        self._catch_up_to_read()  # type: ignore[attr-defined]
        marks = ",".join("?" * len(ids))
        rows = self.store.conn.execute(f"SELECT state FROM rm_responses WHERE id IN ({marks})",  # type: ignore
                                       tuple(ids)).fetchall() if ids else []
        opener = self.opener()  # type: ignore[attr-defined]
        out = {}
        for (blob,) in rows:
            s = decode_state(bytes(blob))
            out[s.id] = opener.deep({
                "id": s.id, "ruleset": s.ruleset, "period": s.period, "subject": s.subject, "rater": s.rater,
                "respondent": s.respondent, "answers": dict(s.answers), "reasons": dict(s.reasons),
                "comment": s.comment, "recorded": s.recorded, "corrections": [a.id for a in s.corrections],
                "withdrawn": s.withdrawn.id if s.withdrawn else None})
        return out
