"""The layers hold: a pure core, no import cycle, and each role imports only what it may.

The source is read with ``ast``; nothing is imported. An import counts wherever it
is written (module top, a function body, under ``if TYPE_CHECKING:``), and so does
a module named by a string that is imported later: an ``importlib.import_module``
argument or a module-level table in capitals such as the CLI's ``COMMANDS``.
(Celery's ``include=["farloom_tasks.tasks"]`` is not followed: it is the framework's
registry of task modules, loaded by the worker at start, and a tasks module must
import its app.) Each checker is tried on a planted violation first, so a checker
that quietly finds nothing fails too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("farloom_tasks", "workers")
TOP_LEVEL_MODULES = ("beat_schedule",)

CORE = "farloom_tasks.core"
# I/O the core may not import: drivers, brokers, Celery, sockets, HTTP, processes, threads.
CORE_FORBIDDEN = frozenset({
    "psycopg2", "psycopg", "redis", "pika", "sqlalchemy", "alembic", "celery", "kombu",
    "socket", "requests", "httpx", "urllib3", "subprocess", "threading", "multiprocessing",
    "asyncio",
})
CORE_MAY_IMPORT = ("farloom_tasks.errors",)  # the one module outside core it may use
# Reading (or waiting on) the clock; the core is handed the time instead.
CLOCK_CALLS = frozenset({
    "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns", "time.perf_counter",
    "time.perf_counter_ns", "time.process_time", "time.sleep", "datetime.datetime.now",
    "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
})
# These read the clock only when called without the moment to format.
CLOCK_WITHOUT_ARGUMENT = {"time.gmtime": 0, "time.localtime": 0, "time.ctime": 0,
                          "time.asctime": 0, "time.strftime": 1}

PROTOCOL_LIBRARIES = frozenset({"sqlalchemy", "psycopg2", "redis", "pika"})
STORES = "farloom_tasks.stores"
# Modules outside the stores that may import a protocol library, and why. Keep it short.
SPEAKS_PROTOCOL_ANYWAY: dict[str, frozenset[str]] = {
    # The benchmark harness creates, fills and times throw-away databases, Redis dbs
    # and vhosts, and its naive baselines are written against the raw clients on purpose.
    "farloom_tasks.bench": PROTOCOL_LIBRARIES,
    # The consume loops hold their pika connection: basic_consume, acks and sleeps run
    # on the connection's own thread (pika is not thread-safe), so they cannot sit
    # behind a store. They import pika only, never a database or Redis client.
    "workers.ingest": frozenset({"pika"}),
    "workers.aggregate_writer": frozenset({"pika"}),
    # The Celery worker process's connection holder: it builds the engine and the Redis
    # client through the stores after the fork and hands them to the tasks.
    "farloom_tasks.task_resources": frozenset({"sqlalchemy", "redis"}),
    # The HTTP adapter: one connection per request handed to stores.agg_reads (which
    # holds the SQL), and SQLAlchemy's errors mapped to 503 in FastAPI's handler.
    "farloom_tasks.api.app": frozenset({"sqlalchemy"}),
}


@dataclass(frozen=True)
class Import:
    target: str  # dotted module name, resolved to a known module where one is meant
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``: names a type, never runs


@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool


def load_sources() -> dict[str, Source]:
    found: dict[str, Source] = {}
    paths = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    paths += [ROOT / f"{name}.py" for name in TOP_LEVEL_MODULES]
    for path in paths:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        found[name] = Source(name, path, ast.parse(path.read_text(), str(path)), is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _strings(node: ast.AST) -> Iterable[tuple[str, int]]:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            yield inner.value, inner.lineno


def imports_of(tree: ast.Module, name: str, is_package: bool,
               known: Iterable[str] = ()) -> list[Import]:
    """Every import in ``tree``, written or named by a string (see the module docstring)."""
    known = set(known)
    package = name if is_package else name.rpartition(".")[0]
    type_only_nodes = {id(inner) for node in ast.walk(tree)
                       if isinstance(node, ast.If) and _is_type_checking(node.test)
                       for statement in node.body for inner in ast.walk(statement)}
    found: list[Import] = []

    def add(target: str, node: ast.AST) -> None:
        found.append(Import(target, getattr(node, "lineno", 0), id(node) in type_only_nodes))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in known else base, node)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            named = [*node.args[:1]] if called in ("import_module", "__import__") else []
            for argument in named:
                for text, _ in _strings(argument):
                    if text in known:
                        add(text, node)
    for statement in tree.body:  # module-level tables in capitals, e.g. COMMANDS
        targets = (statement.targets if isinstance(statement, ast.Assign) else
                   [statement.target] if isinstance(statement, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id.isupper() for t in targets):
            for text, line in _strings(statement):
                if text in known:
                    found.append(Import(text, line, False))
    return found


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (head := _dotted(node.value)) is not None:
        return f"{head}.{node.attr}"
    return None


def core_violations(tree: ast.Module, name: str, path: str = "<source>", *,
                    is_package: bool = False, known: Iterable[str] = ()) -> list[str]:
    """What makes a core module impure: I/O imports, imports from outside core, clock reads."""
    problems: list[tuple[int, str]] = []
    for found in imports_of(tree, name, is_package, known):
        root = found.target.split(".")[0]
        if root in CORE_FORBIDDEN:
            problems.append((found.line, f"imports {found.target}"))
        elif root == "farloom_tasks" and not (
                _inside(found.target, CORE) or found.target in CORE_MAY_IMPORT):
            problems.append((found.line, f"imports {found.target} from outside the core"))
    aliases: dict[str, str] = {}  # local name -> what it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({(a.asname or a.name.split(".")[0]): (a.name if a.asname else
                            a.name.split(".")[0]) for a in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            aliases.update({(a.asname or a.name): f"{node.module}.{a.name}" for a in node.names})
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (called := _dotted(node.func)) is not None:
            head, _, rest = called.partition(".")
            full = ".".join(filter(None, [aliases.get(head, head), rest]))
            reads = full in CLOCK_CALLS or (
                full in CLOCK_WITHOUT_ARGUMENT
                and len(node.args) <= CLOCK_WITHOUT_ARGUMENT[full] and not node.keywords)
            if reads:
                problems.append((node.lineno, f"reads the clock ({full})"))
    return [f"{path}:{line}: {problem}" for line, problem in sorted(problems)]


def import_graph(sources: Mapping[str, Source]) -> dict[str, set[str]]:
    """Module -> the project modules it imports at run time (type-only imports left out)."""
    known = set(sources)
    graph: dict[str, set[str]] = {}
    for name, source in sources.items():
        graph[name] = {found.target for found in imports_of(
            source.tree, name, source.is_package, known)
            if found.target in known and found.target != name and not found.type_only}
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle (a, b, ..., a) per strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                on_stack.discard(member)
                group.append(member)
            on_stack.discard(node)
            if group:
                groups.append([node, *group])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(graph, set(group), min(group)) for group in groups]


def _cycle_through(graph: Mapping[str, Iterable[str]], group: set[str], start: str) -> list[str]:
    """A path from ``start`` back to itself inside ``group`` (breadth first: a short one)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(set(graph.get(node, ())) & group):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def _where(source: Source, found: Import) -> str:
    return f"{source.path.relative_to(ROOT)}:{found.line}: imports {found.target}"


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(rule: str) -> list[str]:
    sources = load_sources()
    problems = []
    for name, source in sources.items():
        for found in imports_of(source.tree, name, source.is_package, sources):
            if _breaks(rule, name, found):
                problems.append(_where(source, found))
    return problems


def _breaks(rule: str, name: str, found: Import) -> bool:
    target = found.target
    if rule == "workers":
        return (_inside(name, "farloom_tasks") and not _inside(name, "farloom_tasks.cli")
                and _inside(target, "workers"))
    if rule == "workers-upward":
        return _inside(name, "workers") and (_inside(target, "farloom_tasks.cli")
                                             or _inside(target, "farloom_tasks.bench"))
    if rule == "bench":
        return (_inside(target, "farloom_tasks.bench") and not _inside(name, "farloom_tasks.bench")
                and name != "farloom_tasks.cli.bench")
    if rule == "protocols":
        library = target.split(".")[0]
        allowed = next((libs for module, libs in SPEAKS_PROTOCOL_ANYWAY.items()
                        if _inside(name, module)), frozenset())
        return (library in PROTOCOL_LIBRARIES and not found.type_only
                and not _inside(name, STORES) and library not in allowed)
    raise ValueError(rule)


def test_the_core_checker_reports_a_planted_io_import_and_clock_read() -> None:
    planted = ast.parse("import redis\nimport time\nfrom datetime import datetime\n"
                        "from farloom_tasks.settings import Settings\n"
                        "def now() -> float:\n    return time.monotonic()\n"
                        "stamp = datetime.now()\nformatted = time.strftime('%H')\n"
                        "pure = time.strftime('%H', time.gmtime(0))\n")
    problems = core_violations(planted, "farloom_tasks.core.planted", "planted.py")
    assert problems == [
        "planted.py:1: imports redis",
        "planted.py:4: imports farloom_tasks.settings from outside the core",
        "planted.py:6: reads the clock (time.monotonic)",
        "planted.py:7: reads the clock (datetime.datetime.now)",
        "planted.py:8: reads the clock (time.strftime)",
    ]


def test_the_core_imports_no_io_library_and_reads_no_clock() -> None:
    sources = load_sources()
    core = [s for name, s in sources.items() if _inside(name, CORE)]
    assert len(core) > 10
    problems = [problem for source in core for problem in core_violations(
        source.tree, source.name, str(source.path.relative_to(ROOT)),
        is_package=source.is_package, known=sources)]
    assert not problems, "the core must stay pure:\n" + "\n".join(problems)


def test_the_cycle_finder_reports_a_planted_cycle_with_its_modules() -> None:
    planted = {"a": ast.parse("import b\n"), "b": ast.parse("def f():\n    import c\n"),
               "c": ast.parse("TABLE = {'x': ('a', 'help')}\n"), "d": ast.parse("import a\n")}
    graph = import_graph({n: Source(n, Path(n), t, False) for n, t in planted.items()})
    assert graph == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_there_is_no_import_cycle_between_farloom_tasks_workers_and_the_beat_schedule() -> None:
    sources = load_sources()
    graph = import_graph(sources)
    assert {"farloom_tasks.cli", "workers.ingest", "beat_schedule"} <= set(graph)
    assert "farloom_tasks.cli.bench" in graph["farloom_tasks.cli"]  # COMMANDS' strings count
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_layer_rules_report_planted_violations() -> None:
    def planted(rule: str, name: str, target: str, type_only: bool = False) -> bool:
        return _breaks(rule, name, Import(target, 1, type_only))

    assert planted("workers", "farloom_tasks.pipeline.replay", "workers.ingest")
    assert not planted("workers", "farloom_tasks.cli", "workers.ingest")
    assert planted("workers-upward", "workers.ingest", "farloom_tasks.cli.bench")
    assert planted("bench", "farloom_tasks.stores.raw", "farloom_tasks.bench.env")
    assert not planted("bench", "farloom_tasks.cli.bench", "farloom_tasks.bench.options")
    assert planted("protocols", "farloom_tasks.pipeline.status", "sqlalchemy")
    assert planted("protocols", "workers.ingest", "psycopg2.errors")
    assert not planted("protocols", "workers.ingest", "pika.exceptions")
    assert not planted("protocols", "farloom_tasks.pipeline.replay", "sqlalchemy.engine", True)


def test_nothing_in_farloom_tasks_but_the_cli_imports_workers() -> None:
    problems = _violations("workers")
    assert not problems, "only farloom_tasks.cli may import workers:\n" + "\n".join(problems)


def test_workers_import_neither_the_cli_nor_the_benchmarks() -> None:
    problems = _violations("workers-upward")
    assert not problems, "workers/ sits below the CLI and the benchmarks:\n" + "\n".join(
        problems)


def test_only_the_benchmarks_and_their_command_line_import_the_benchmarks() -> None:
    problems = _violations("bench")
    assert not problems, "farloom_tasks.bench is a leaf:\n" + "\n".join(problems)


def test_only_the_stores_speak_sql_redis_or_amqp() -> None:
    problems = _violations("protocols")
    assert not problems, ("SQLAlchemy, psycopg2, redis and pika belong in farloom_tasks/stores/ "
                          "(or SPEAKS_PROTOCOL_ANYWAY, with a reason):\n" + "\n".join(problems))
