"""A conformance kit for rule-set plugins: import it in your own tests.

::

    from csat.plugins.testing import check_plugin
    import my_company_csat.plugin as plugin

    def test_my_rule_set_conforms(tmp_path):
        check_plugin(plugin, examples=["tests/example.jsonl"], tmp_path=tmp_path)

:func:`check_plugin` runs every check below; each raises ``AssertionError``
with a message that names the rule set (or the plugin) and says what is wrong. The checks use the real engine on a
real SQLite file, with the built-in rule sets installed beside yours. :func:`check_scoring` runs
your rule sets with the ``decimal`` context's ``FloatOperation`` trapped (a float that meets a
Decimal fails, naming the line), and :func:`check_hash_seeds` scores the examples in two fresh
interpreters under different ``PYTHONHASHSEED`` values and compares the published bytes — so the
module that defines your rule set must be importable by name there (``sys.path`` is passed on).
"""
from __future__ import annotations

import copy
import decimal
import importlib
import importlib.util
import inspect
import json
import linecache
import os
import pickle
import subprocess
import sys
import sysconfig
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pluggy

from csat.engine import Engine, IngestFailed, InvalidParams, RuleSetFailed
from csat.engine.events import ResponseRecorded
from csat.engine.jsonable import to_json
from csat.engine.ruleset import Questionnaire, QuestionItem, ResponseState, RuleSet

from .manager import installed_rulesets, load_rulesets, make_plugin_manager


def check_plugin(plugin: object, examples: Sequence[str | os.PathLike[str]], tmp_path: str | os.PathLike[str],
                 name: str = "plugin-under-test") -> list[RuleSet]:
    """Every check: hooks, parameters, examples, scoring (with floats trapped), explanations, rebuild and
    incremental equality, the same published bytes under two hash seeds.

    :param plugin: the plugin object or module (what your entry point names).
    :param examples: JSON Lines files with events for your rule sets.
    :param tmp_path: a folder for the test databases.
    :returns: the rule sets the plugin provides.
    """
    rulesets = check_hooks(plugin, name)
    for rs in rulesets:
        check_parameters(rs)
        check_questionnaire(rs)
    check_examples(rulesets, examples)
    check_scoring(rulesets, examples, tmp_path)
    check_hash_seeds(rulesets, examples, tmp_path, plugin=plugin)
    return rulesets


def check_hooks(plugin: object, name: str = "plugin-under-test") -> list[RuleSet]:
    """The plugin registers (hook signatures match their specifications), implements only known
    hooks, and provides well-formed rule sets."""
    pm = make_plugin_manager(builtins=True, entry_points=False, plugins={name: plugin})
    infos, broken = load_rulesets(pm)
    for b in broken:
        if b.plugin == name:
            raise AssertionError(f"{name}: {b.reason}")
    try:
        pm.check_pending()  # an @hookimpl whose name is no csat hook (a typo) fails here
    except pluggy.PluginValidationError as e:
        raise AssertionError(f"{name}: {e}") from None
    mine = [i.ruleset for i in infos if i.plugin == name]
    assert mine, f"{name}: csat_rulesets returned no rule set"
    for rs in mine:
        assert rs.version and rs.title, f"{rs.id}: set version and title"
        assert rs.params_type.__struct_config__.forbid_unknown_fields, (
            f"{rs.id}: params_type needs forbid_unknown_fields=True so a misspelt TOML key is an error")
        assert os.path.isfile(rs.defaults_path), f"{rs.id}: defaults_path {rs.defaults_path} is not a file"
    return mine


def check_parameters(rs: RuleSet) -> None:
    """The shipped TOML decodes, passes the rule set's checks and survives the log's round trip."""
    try:
        defaults = rs.default_params()
        stored = rs.complete_params({}, rs.defaults_path)
        again = rs.complete_params(stored)
    except InvalidParams as e:
        raise AssertionError(f"{rs.id}: the shipped parameters do not pass: " + "; ".join(e.problems)) from None
    except Exception as e:  # noqa: BLE001 — say which rule set, whatever its code raised
        raise AssertionError(f"{rs.id}: reading the shipped parameters {rs.defaults_path} raised "
                             f"{type(e).__name__}: {e}") from None
    assert again == stored, f"{rs.id}: parameters change on a round trip through the log"
    assert json.loads(json.dumps(stored)) == stored, f"{rs.id}: stored parameters must be plain JSON"
    try:
        rs.decode_params({**defaults, "no_such_key_in_any_rule_set": 1})
    except InvalidParams as e:
        assert "no_such_key_in_any_rule_set" in str(e), f"{rs.id}: the error must name the unknown key: {e}"
    else:
        raise AssertionError(f"{rs.id}: an unknown parameter key was accepted")


def _first_answer(item: QuestionItem) -> Any:
    if item.kind == "choice":
        return item.choices[0].value
    if item.kind == "yesno":
        return "yes"
    low = item.minimum if item.minimum is not None else Decimal(0)
    return int(low) if low == low.to_integral_value() else float(low)


def check_questionnaire(rs: RuleSet) -> None:
    """The questionnaire (where the rule set publishes one) is well-formed; answers built from it
    pass ``check_response`` under the shipped parameters (the first choice, or the minimum, of
    every item; a reason where that answer needs one); and an answer that needs a reason, given
    without it, fails naming ``reasons.<item>``."""
    params = rs.decode_params(rs.complete_params({}))
    q = rs.questionnaire(params)
    if q is None:
        return
    assert isinstance(q, Questionnaire), f"{rs.id}: questionnaire() must return a Questionnaire or None, got {q!r:.60}"
    assert q.items, f"{rs.id}: the questionnaire of the shipped parameters has no items"
    for item in q.items:
        assert isinstance(item, QuestionItem) and item.id and item.label, f"{rs.id}: a questionnaire item needs an id and a label: {item!r:.80}"
        assert item.kind in ("choice", "number", "yesno"), f"{rs.id}: item {item.id}: unknown kind {item.kind!r}"
        assert item.kind != "choice" or item.choices, f"{rs.id}: item {item.id}: a choice item needs choices"
        assert (item.form is None) == (not q.forms), f"{rs.id}: item {item.id}: name its form exactly when there are forms"
    for form in q.forms or (None,):
        items = [i for i in q.items if i.form == form]
        answers = {i.id: _first_answer(i) for i in items}
        base = {"type": "response", "id": "kit-1", "ruleset": rs.id, "period": "2026-01", "subject": "kit-subject",
                "rater": "kit-rater", "form": form}
        reasons = {i.id: "kit reason" for i in items if str(answers[i.id]) in i.reason_for}
        problems = rs.check_response(_response({**base, "answers": answers, "reasons": reasons}), params)
        assert not problems, (f"{rs.id}: answers built from its questionnaire{f' (form {form})' if form else ''} do "
                              f"not pass check_response: {'; '.join(f'{p.field}: {p.message}' for p in problems)}")
        for item in items:
            for needs in item.reason_for:
                answered = {**answers, item.id: needs}
                missing = {k: v for k, v in reasons.items() if k != item.id}
                problems = rs.check_response(_response({**base, "answers": answered, "reasons": missing}), params)
                assert any(p.field == f"reasons.{item.id}" for p in problems), (
                    f"{rs.id}: item {item.id} answered {needs!r} without a reason passes check_response, but the "
                    "questionnaire says that answer needs one (reason_for)")


def _response(data: dict[str, Any]) -> ResponseRecorded:
    return msgspec.convert({k: v for k, v in data.items() if v is not None}, ResponseRecorded)


def _events(examples: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    out = []
    for path in examples:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise AssertionError(f"{path}:{number}: not JSON: {e}") from None
    return out


def check_examples(rulesets: list[RuleSet], examples: Sequence[str | os.PathLike[str]]) -> None:
    """Adoptions in the examples written for an older parameter version (``params_version``)
    decode after the rule set's ``upgrade_params``.

    A rule set whose results depend on the org chart says so (``uses_org``): otherwise a
    ``unit`` event would leave its published scores stale. Checked on the examples: they may
    declare units, and the rule set may credit a response to another subject than its own
    (or its ``roles`` units), only with ``uses_org = True``."""
    events = _events(examples)
    ids = {rs.id: rs for rs in rulesets}
    for e in events:  # adoptions written for an older parameter version must still be readable
        rs = ids.get(e.get("ruleset")) if e.get("type") == "adoption" else None
        version = e.get("params_version") or rs.params_version if rs is not None else None
        if rs is not None and version < rs.params_version:
            try:
                upgraded = rs.upgrade_params(dict(e.get("params", {})), version)
                rs.decode_params(upgraded, f"adoption {e.get('id')}")
            except Exception as x:  # noqa: BLE001 — say which adoption and why
                raise AssertionError(f"{rs.id}: adoption {e.get('id')!r} of version {version} does not decode after "
                                     f"upgrade_params: {x}") from None
    used = {e.get("ruleset") for e in events if e.get("type") == "response"} & ids.keys()
    units = [e.get("id") for e in events if e.get("type") == "unit"]
    for rid in sorted(used):
        _check_cases_used(ids[rid], events)
        rs = ids[rid]
        if rs.uses_org:
            continue
        assert not units, (f"{rid}: the examples declare units ({', '.join(map(str, units[:3]))}…) but the rule set "
                           "does not set uses_org = True: scores would not move when the org chart changes")
        params = rs.decode_params(rs.complete_params({}))
        chain_calls: list[str] = []

        def chain(unit: str, month: str) -> list[str]:
            chain_calls.append(unit)
            return []

        for e in events:
            if e.get("type") != "response" or e.get("ruleset") != rid:
                continue
            state = ResponseState(id=e["id"], position=0, ruleset=rid, period=e["period"], subject=e["subject"],
                                  answers=e.get("answers", {}), form=e.get("form"), roles=e.get("roles", {}))
            allowed = {state.subject} | {u for us in state.roles.values() for u in us}
            for c in rs.credits(state, params, chain):
                assert c.subject in allowed, (
                    f"{rid}: response {state.id} is credited to {c.subject!r}, which is neither its subject nor one "
                    "of its roles, but the rule set does not set uses_org = True")
            assert not chain_calls, (f"{rid}: credits() follows the org chart (chain) but the rule set does not set "
                                     "uses_org = True")


def _check_cases_used(rs: RuleSet, events: list[dict[str, Any]]) -> None:
    """Complaints or rectifications in the examples that concern the rule set (filed for it, or
    for every rule set against a subject it scores) need ``uses_cases``: without it they are
    silently ignored (``MonthInput.cases`` stays empty)."""
    if rs.uses_cases:
        return
    subjects = {e.get("subject") for e in events if e.get("type") == "response" and e.get("ruleset") == rs.id}
    cases = [str(e.get("id")) for e in events if e.get("type") in ("complaint", "rectification")
             and (e.get("ruleset") == rs.id or (e.get("ruleset") is None and e.get("subject") in subjects))]
    assert not cases, (f"{rs.id}: the examples hold complaints or rectifications for it ({', '.join(cases[:3])}"
                       f"{'…' if len(cases) > 3 else ''}) but the rule set does not set uses_cases = True, so they "
                       "would be ignored: set uses_cases = True and score them (MonthInput.cases), or leave them "
                       "out of the examples")


def _rows(engine: Engine, ids: set[str]) -> list[dict[str, Any]]:
    rows = [r for r in engine.scores() if r["ruleset"] in ids]
    failures = [f for f in engine.projection.failures if any(f.startswith(f"rule set {i}:") for i in ids)]
    assert not failures, "scoring failed: " + "; ".join(failures)
    return rows


def check_scoring(rulesets: list[RuleSet], examples: Sequence[str | os.PathLike[str]],
                  tmp_path: str | os.PathLike[str]) -> None:
    """The examples ingest and score (scores are Decimal, figures well-formed); every row explains
    to itself; item points (where the rule set gives them) are well-formed; a rebuild (in one process and
    in several) and an event-by-event ingest give the same rows as one ingest.

    All of it runs with the ``decimal`` context's ``FloatOperation`` trapped: a float that meets a
    Decimal in a rule set (``Decimal(0.1)``, ``Decimal(float(w))``, ``score < 59.5``) fails, naming
    the file and line — a float carries binary digits (9.375 through a float can publish 9.37)."""
    met: list[tuple[str, BaseException]] = []
    watched = [_watched(rs, met) for rs in rulesets]
    try:
        with decimal.localcontext() as ctx:  # a forked scorer inherits it (it forks from this thread)
            ctx.traps[decimal.FloatOperation] = True
            _check_scoring(watched, examples, tmp_path)
    except Exception:  # noqa: BLE001 — a float met a Decimal: that is the cause to name
        if met:
            raise AssertionError(_float_message(*met[0])) from None
        raise
    if met:  # swallowed on the way (a remedy that failed, say): still a float in decimal arithmetic
        raise AssertionError(_float_message(*met[0]))


def _watched(rs: RuleSet, met: list[tuple[str, BaseException]]) -> RuleSet:
    """A copy of ``rs`` whose methods note a ``FloatOperation`` they raise (the engine turns it
    into a one-line failure; the traceback it had names the line)."""
    def noting(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except decimal.FloatOperation as e:
                met.append((rs.id, e))
                raise
        return call

    clone = copy.copy(rs)
    try:
        for name, _ in inspect.getmembers(type(rs), inspect.isfunction):
            if not name.startswith("_"):
                object.__setattr__(clone, name, noting(getattr(clone, name)))
    except (AttributeError, TypeError):  # __slots__: no instance attributes; a float still fails, unnamed
        return rs
    return clone


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: csat's own code and the standard library: a float is named where the rule set's code passed it
_NOT_THEIRS = tuple(os.path.join(d, "") for d in (os.path.join(_ROOT, "engine"), os.path.join(_ROOT, "plugins"),
                                                  os.path.abspath(sysconfig.get_paths()["stdlib"])))


def _float_message(ruleset: str, e: BaseException) -> str:
    """Where the float met the Decimal: the innermost frame of the rule set's own code (not
    csat's, not the standard library's)."""
    frames = [(f.f_code.co_filename, line) for f, line in _walk(e.__traceback__)]
    theirs = [fl for fl in frames if not os.path.abspath(fl[0]).startswith(_NOT_THEIRS)]
    file, line = (theirs or frames or [("?", 0)])[-1]
    code = linecache.getline(file, line).strip()
    shown = file if os.path.relpath(file).startswith("..") else os.path.relpath(file)
    return (f"rule set {ruleset}: a float met a Decimal at {shown}:{line}" + (f" ({code})" if code else "")
            + ": convert numbers with Decimal(str(x)) or csat.engine.numbers.dec(x), and keep parameters "
            "Decimal — a float's binary digits change published figures")


def _walk(tb: types.TracebackType | None) -> Iterator[tuple[types.FrameType, int]]:
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def _check_scoring(rulesets: list[RuleSet], examples: Sequence[str | os.PathLike[str]],
                   tmp_path: str | os.PathLike[str]) -> None:
    builtins = [i.ruleset for i in installed_rulesets(make_plugin_manager(entry_points=False))]
    everything = builtins + [rs for rs in rulesets if rs.id not in {b.id for b in builtins}]
    ids = {rs.id for rs in rulesets}
    named = ", ".join(sorted(ids))
    tmp = Path(tmp_path)
    with Engine.open(tmp / "conformance-once.db", rulesets=everything) as engine:
        try:
            engine.ingest(list(examples))
        except IngestFailed as e:
            raise AssertionError(f"{named}: the examples do not ingest: " + "; ".join(e.problems)) from None
        rows = _rows(engine, ids)
        assert rows, f"the examples produced no score for {named}"
        for row in rows:
            try:
                x = engine.explain(row["ruleset"], row["subject"], row["period"], row["metric"])
            except RuleSetFailed as e:
                raise AssertionError(str(e)) from None
            assert {k: x[k] for k in row} == row, f"{row['ruleset']}: explain disagrees with the published row {row}"
            assert x["steps"], f"explain of {row['ruleset']} {row['subject']} {row['period']} has no steps"
            assert x["params_hash"].startswith("sha256:")
            for ev in x["events"]:
                assert {"position", "type", "id", "used"} <= set(ev), f"explain event without its keys: {ev}"
                assert ev["used"] or ev.get("why"), f"an excluded event must say why: {ev}"
        for rid, period in sorted({(r["ruleset"], r["period"]) for r in rows}):
            try:  # item_points, where the rule set has it, well-formed on every example response
                items = engine.items(rid, period)
            except RuleSetFailed as e:
                raise AssertionError(str(e)) from None
            for item in items:
                assert 0 <= item["attainment"] <= 100 and item["responses"] > 0, f"{rid} {period}: {item}"
        engine.rebuild()
        assert _rows(engine, ids) == rows, f"{named}: a rebuild from the log gives other rows than the incremental path"
        engine.rebuild(jobs=2)  # months scored in forked processes, as `csat rebuild` does by default
        assert _rows(engine, ids) == rows, (f"{named}: a rebuild scoring months in several processes gives other "
                                            "rows (does a result depend on state kept from an earlier call?)")
    with Engine.open(tmp / "conformance-stepwise.db", rulesets=everything) as engine:
        for event in _events(examples):
            engine.append([event])
            engine.catch_up()
        assert _rows(engine, ids) == rows, f"{named}: ingesting event by event gives other rows than one ingest"


#: the two hash seeds the published bytes are compared under (strings hash, and sets iterate, otherwise)
HASH_SEEDS = (1, 2)


def check_hash_seeds(rulesets: list[RuleSet], examples: Sequence[str | os.PathLike[str]],
                     tmp_path: str | os.PathLike[str], plugin: object = None) -> None:
    """The examples, ingested into a fresh store in a fresh interpreter, publish the same bytes
    (the score rows with their extras, as ``csat scores --format json`` gives them) under
    ``PYTHONHASHSEED`` 1 and 2: a result built in ``set`` order, or from a dict filled from a set,
    changes when another process rebuilds the store.

    The interpreters re-create the rule sets: from ``plugin`` when it is a module importable by
    name (what an entry point names), else by pickling each rule set — its class must then be
    defined at the top level of an importable module. This process's ``sys.path`` is passed on."""
    tmp = Path(tmp_path)
    ids = sorted({rs.id for rs in rulesets})
    named = ", ".join(ids)
    spec: dict[str, Any] = {"examples": [os.path.abspath(p) for p in examples], "ids": ids, "plugin": None,
                            "pickles": []}
    if _importable(plugin):
        spec["plugin"] = plugin.__name__  # type: ignore[union-attr]
    else:
        for n, rs in enumerate(rulesets):
            try:
                blob = pickle.dumps(rs)
                if type(pickle.loads(blob)) is not type(rs):
                    raise TypeError(f"it unpickles as {type(pickle.loads(blob)).__name__}")
            except Exception as e:  # noqa: BLE001 — say why it cannot be re-created
                raise AssertionError(
                    f"rule set {rs.id}: the kit cannot re-create it in a fresh interpreter to compare hash seeds "
                    f"({type(e).__name__}: {e}): define its class at the top level of an importable module, or "
                    "give check_plugin the plugin module") from None
            (tmp / f"hashseed-{n}.pickle").write_bytes(blob)
            spec["pickles"].append(str(tmp / f"hashseed-{n}.pickle"))
    (tmp / "hashseed.json").write_text(json.dumps(spec), encoding="utf-8")
    path = os.pathsep.join(os.path.abspath(p) if p else os.getcwd() for p in sys.path)
    runs = []
    for seed in HASH_SEEDS:
        env = {**os.environ, "PYTHONHASHSEED": str(seed), "CSAT_NO_ENTRY_POINTS": "1", "PYTHONPATH": path}
        (tmp / f"hashseed-{seed}.db").unlink(missing_ok=True)
        runs.append(subprocess.Popen(
            [sys.executable, "-c", "import sys; from csat.plugins.testing import _published_rows as p; "
                                   "p(sys.argv[1], sys.argv[2])", str(tmp / "hashseed.json"),
             str(tmp / f"hashseed-{seed}.db")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = []
    try:
        done = [(seed, *run.communicate(timeout=600), run.returncode) for seed, run in zip(HASH_SEEDS, runs)]
    finally:
        for run in runs:  # a timeout, or an interrupt: leave no interpreter behind
            if run.poll() is None:
                run.kill()
                run.wait()
    for seed, out, err, returncode in done:
        if returncode:
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            raise AssertionError(f"rule set {named}: scoring the examples in a fresh interpreter "
                                 f"(PYTHONHASHSEED={seed}) failed: " + " / ".join(tail))
        outs.append(out)
    if outs[0] != outs[1]:
        raise AssertionError(f"rule set {named}: the published rows depend on PYTHONHASHSEED (set or dict order?): "
                             f"first difference at {_first_difference(*outs)}: build lists and dicts in a fixed "
                             "order (sorted(...)), not a set's")


def _importable(plugin: object) -> bool:
    """Whether ``plugin`` is a module another interpreter imports by its name (the same file)."""
    if not isinstance(plugin, types.ModuleType) or not getattr(plugin, "__file__", None):
        return False
    try:
        found = importlib.util.find_spec(plugin.__name__)
    except (ImportError, ValueError):
        return False
    return found is not None and found.origin is not None and \
        os.path.realpath(found.origin) == os.path.realpath(plugin.__file__)


def _first_difference(a: bytes, b: bytes) -> str:
    """Where two runs' published rows first differ: the row, the key and both values (as JSON)."""
    first, second = HASH_SEEDS
    rows_a, rows_b = json.loads(a), json.loads(b)
    for ra, rb in zip(rows_a, rows_b):
        at = " ".join(str(ra.get(k)) for k in ("ruleset", "subject", "period", "metric"))
        for k in dict.fromkeys([*ra, *rb]):
            va, vb = (json.dumps(r.get(k), ensure_ascii=False) for r in (ra, rb))
            if va != vb:
                return f"row {at}, {k}: {va:.120} (PYTHONHASHSEED={first}) vs {vb:.120} (PYTHONHASHSEED={second})"
        if list(ra) != list(rb):
            return f"row {at}: the order of its keys ({', '.join(ra)} vs {', '.join(rb)})"
    return f"the number of rows ({len(rows_a)} vs {len(rows_b)})"


def _published_rows(spec_file: str, db: str) -> None:
    """In the fresh interpreter of :func:`check_hash_seeds`: the rule sets re-created, the examples
    ingested into a new store, the rows of the rule sets under test written to stdout as JSON."""
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    if spec["plugin"]:
        pm = make_plugin_manager(builtins=True, entry_points=False,
                                 plugins={"plugin-under-test": importlib.import_module(spec["plugin"])})
        everything = [i.ruleset for i in installed_rulesets(pm)]
    else:
        builtins = [i.ruleset for i in installed_rulesets(make_plugin_manager(entry_points=False))]
        mine = [pickle.loads(Path(p).read_bytes()) for p in spec["pickles"]]
        everything = builtins + [rs for rs in mine if rs.id not in {b.id for b in builtins}]
    with Engine.open(db, rulesets=everything) as engine:
        try:
            engine.ingest(spec["examples"])
        except IngestFailed as e:
            raise SystemExit("the examples do not ingest: " + "; ".join(e.problems)) from None
        rows = _rows(engine, set(spec["ids"]))
    sys.stdout.buffer.write(to_json(rows))
