"""The pluggy markers of the ``csat`` project."""
import pluggy

PROJECT = "csat"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
