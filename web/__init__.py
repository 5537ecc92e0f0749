"""csat's web front (``csat serve``): raters answer, units see their own figures and how they were
derived, the quality office runs the cycle.

It is an outside application of the engine: it uses nothing but the public embedding API
(:class:`csat.engine.Engine`). :func:`create_app` returns the ASGI application (Starlette);
pages are rendered on the server (Jinja2) and work without JavaScript.

Who sees what (:mod:`csat.web.auth`): the quality office (``office``) everything; a unit's
``manager`` that unit and the units below it; an ``auditor`` reads everything and changes
nothing; a rater only the assignment its personal link opens. A refusal never tells whether
the thing asked for exists.
"""
from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
