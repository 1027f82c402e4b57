"""Mutation testing of the serving code with cosmic-ray: each file of inference/ and main.py is
mutated (one small change at a time) in a copy of the working tree, the fast tests that cover it
run against each mutant, and killed / survived are printed per file. Slow: run it by hand
whenever serving code changes, not in CI.

Each test file of a source file first runs once under coverage, in its own process and in every
process it starts, noting what runs each line: a test (its function was running), a test file
(a server or CLI it started), or anything (import time, a fixture). A mutant then runs only
those tests, or all of the file's tests where coverage saw none run its line (it cannot see into
an audit hook, for one). A line's tests are the ones that can fail because of it, so a mutant is
killed as if the file's tests all ran, only sooner.
Sessions are kept in .mutation/: --again runs only the previous survivors of an unchanged file.

    nice -n 10 python tools/mutation.py                         # every file below
    nice -n 10 python tools/mutation.py inference/urlpolicy.py  # some files
    python tools/mutation.py --survivors inference/urlpolicy.py # and the diff of each survivor
    python tools/mutation.py --again inference/urlpolicy.py     # after adding tests: the survivors again
    python tools/mutation.py --report                           # the table of the last runs, running nothing

Mutants listed in tools/equivalent_mutants.txt (no test can tell them apart) are counted apart."""
import argparse
import ast
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "tools" / "equivalent_mutants.txt"
# file -> (the fast tests that cover it, seconds a mutant's test run may take before it counts as killed)
TARGETS = {
    "inference/urlpolicy.py": ("tests/test_urlpolicy.py", 60),
    "inference/segments.py": ("tests/test_segments.py tests/test_function.py", 120),
    "inference/errors.py": ("tests/test_contract.py::test_the_error_catalogue_openapi_and_the_api_docs_agree "
                            "tests/test_function.py", 120),
    "inference/pipeline.py": ("tests/test_function.py", 120),
    "inference/model.py": ("tests/test_model_contract.py tests/test_function.py", 120),
    "inference/contract.py": ("tests/test_model_contract.py tests/test_function.py", 120),
    "inference/features.py": ("tests/test_function.py", 120),
    "inference/decode.py": ("tests/test_decode.py tests/test_function.py tests/test_hostile.py", 150),
    "inference/remote.py": ("tests/test_remote.py tests/test_function.py tests/test_hostile.py", 150),
    "inference/resolve.py": ("tests/test_resolve.py tests/test_function.py", 120),
    "inference/config.py": ("tests/test_config.py tests/test_deploy.py tests/test_function.py", 120),
    "inference/batch.py": ("tests/test_batch.py", 150),
    "inference/__main__.py": ("tests/test_batch.py tests/test_server.py", 150),
    "inference/storage.py": ("tests/test_storage.py tests/test_batch_bucket.py", 150),
    "inference/tokens.py": ("tests/test_tokens.py", 120),
    "inference/parts.py": ("tests/test_batch_bucket.py", 150),
    "main.py": ("tests/test_function.py tests/test_server.py tests/test_hostile_clients.py", 150),
}
# Operators left out: random or redundant ones. A binary operator is replaced by its natural
# opposite only, a comparison by its negation and its boundary twin.
EXCLUDED_OPERATORS = [
    r"core/Variable(Replacer|Inserter)",
    r"core/ReplaceBinaryOperator_(?!Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Mul|Mod_FloorDiv|Pow_Mul"
    r"|BitAnd_BitOr|BitOr_BitAnd|BitXor_BitOr|LShift_RShift|RShift_LShift)",
    r"core/ReplaceComparisonOperator_(?!Eq_NotEq|NotEq_Eq|Lt_GtE|Lt_LtE|LtE_Gt|LtE_Lt|Gt_LtE|Gt_GtE|GtE_Lt"
    r"|GtE_Gt|In_NotIn|NotIn_In|Is_IsNot|IsNot_Is)",
]


def equivalents() -> set[tuple[str, str, str]]:
    """(file, original line, mutated line) of each mutant listed as equivalent: entries of three lines,
    "FILE: why", "- original line", "+ mutated line"."""
    rows, lines = set(), [line for line in EQUIVALENT.read_text().splitlines() if line.strip() and line[0] != "#"]
    for head, minus, plus in zip(lines[::3], lines[1::3], lines[2::3], strict=True):
        assert minus.startswith("-") and plus.startswith("+"), f"{EQUIVALENT}: bad entry at {head}"
        rows.add((head.split(":", 1)[0], minus[1:].strip(), plus[1:].strip()))
    return rows


def changed_lines(diff: str) -> tuple[str, str]:
    """The removed and added lines of a one-line mutant's diff, stripped."""
    body = [d for d in diff.splitlines() if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    return (" ".join(d[1:].strip() for d in body if d[0] == "-").strip(),
            " ".join(d[1:].strip() for d in body if d[0] == "+").strip())


PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
COVERAGE = ".mutation-coverage"  # beside the tree copy: coverage's data files, the map of lines to tests
SESSIONS = ROOT / ".mutation"  # each file's cosmic-ray session, kept for --again (git ignores it)


def map_lines(path: str, tree: Path):
    """Run each of the file's test files once under coverage and write the map {line: [what to
    run]}: the tests whose function ran the line, every test file whose started processes (servers,
    CLIs) ran it, or "*" (all) for a line run at import or in a fixture. Exit if a test fails."""
    rc = tree.parent / f"{COVERAGE}rc"  # beside the tree, not in it (the tests look at the tree's files)
    rc.write_text(f"[run]\nparallel = True\ndata_file = {tree.parent / COVERAGE}-data\ninclude = {tree / path}\n"
                  "dynamic_context = test_function\nsigterm = True\n"
                  "disable_warnings = no-data-collected, module-not-measured, module-not-imported\n")
    env = dict(os.environ, COVERAGE_PROCESS_START=str(rc))  # coverage's .pth starts it in every process
    import coverage
    runs = defaultdict(set)
    for tests in TARGETS[path][0].split():
        test_process = subprocess.Popen([*PYTEST, tests], cwd=tree, env=env, stdout=subprocess.DEVNULL)
        if test_process.wait():  # else every mutant is "killed"
            sys.exit(f"{tests} fails without any mutant: fix it first")
        for part in tree.parent.glob(f"{COVERAGE}-data.*"):
            data = coverage.CoverageData(str(part))
            data.read()
            started = f".pid{test_process.pid}." not in part.name  # a process the tests started
            for line, contexts in data.contexts_by_lineno(str(tree / path)).items():
                if started:
                    runs[line].add(tests)
                    continue
                for context in contexts:
                    module, _, function = context.partition(".")
                    runs[line].add(f"{tests}::{function.replace('.', '::')}"
                                   if function and tests == f"tests/{module}.py" else "*")
            part.unlink()
    (tree.parent / f"{COVERAGE}.json").write_text(json.dumps({line: sorted(ids) for line, ids in runs.items()}))


def run_mutant(path: str):
    """The test command of each mutant (cosmic-ray has just written it into `path`, in the current
    folder, the tree copy): the tests that run its line; all the file's tests if coverage saw none."""
    original = Path(f"../{COVERAGE}.original").read_text()
    mutated = Path(path).read_text().splitlines()
    lines = {n for n, (a, b) in enumerate(zip(original.splitlines(), mutated, strict=False), 1) if a != b}
    statements = [node for node in ast.walk(ast.parse(original)) if isinstance(node, ast.stmt)]
    for n in set(lines):  # a statement over several lines runs as its first: the innermost one's
        lines.add(max((s.lineno for s in statements if s.lineno <= n <= s.end_lineno), default=n))
    runs = json.loads(Path(f"../{COVERAGE}.json").read_text())
    chosen = {test for n in lines for test in runs.get(str(n), ())}
    if "*" in chosen:
        chosen = set(TARGETS[path][0].split())
    chosen = sorted(t for t in chosen if t.split("::")[0] == t or t.split("::")[0] not in chosen)
    if not chosen:  # coverage sees no test run it; it may still run where coverage cannot see (an audit hook)
        print("no test runs this line")
        chosen = TARGETS[path][0].split()
    os.execv(sys.executable, [*PYTEST, *chosen])  # so that cosmic-ray's timeout stops the tests themselves


def run(path: str, tree: Path, survivors: bool, again: bool) -> Counter:
    _tests, timeout = TARGETS[path]
    name = path.replace("/", "_")
    config, db = tree.parent / f"{name}.toml", tree.parent / f"{name}.sqlite"
    map_lines(path, tree)
    shutil.copy(tree / path, tree.parent / f"{COVERAGE}.original")
    command = f"{sys.executable} tools/mutation.py --mutant {path}"
    config.write_text(f'[cosmic-ray]\nmodule-path = "{path}"\ntimeout = {timeout}\nexcluded-modules = []\n'
                      f'test-command = "{command}"\n'
                      f'[cosmic-ray.distributor]\nname = "local"\n'
                      f'[cosmic-ray.filters.operators-filter]\nexclude-operators = {json.dumps(EXCLUDED_OPERATORS)}\n')
    cosmic = [sys.executable, "-m", "cosmic_ray.cli"]
    kept = _kept(path, tree / path)
    if again and kept:
        shutil.copy(kept, db)  # the file is unchanged: what was killed (or is equivalent) stays, the rest runs again
        with sqlite3.connect(db) as session:
            rows = session.execute("SELECT job_id, diff FROM work_results WHERE test_outcome != 'KILLED' "
                                   "AND worker_outcome != 'SKIPPED'").fetchall()
            skip = equivalents()
            session.executemany("DELETE FROM work_results WHERE job_id = ?",
                                [(job,) for job, diff in rows if (path, *changed_lines(diff or "")) not in skip])
    else:
        subprocess.run([*cosmic, "init", str(config), str(db)], cwd=tree, check=True)
        subprocess.run([sys.executable, "-m", "cosmic_ray.tools.filters.operators_filter", str(db), str(config)],
                       cwd=tree, check=True)
    try:
        subprocess.run([*cosmic, "exec", str(config), str(db)], cwd=tree, check=True)
    except KeyboardInterrupt:  # Ctrl-C: count what ran, then stop
        interrupted = True
    else:
        interrupted = False
    SESSIONS.mkdir(exist_ok=True)
    shutil.copy(db, SESSIONS / f"{name}.sqlite")
    shutil.copy(tree / path, SESSIONS / f"{name}.original")
    counts = count(path, db, survivors)
    if interrupted:
        raise Interrupted(counts)
    return counts


def count(path: str, db: Path, survivors: bool = False) -> Counter:
    """killed / survived / equivalent / ... of a session, printing each survivor's diff if asked."""
    dump = subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "dump", str(db)], check=True, capture_output=True,
                          text=True).stdout
    skip = equivalents()
    counts = Counter()
    for line in dump.splitlines():
        _item, result = json.loads(line)
        if result is None:
            counts["pending"] += 1
            continue
        if result["worker_outcome"] == "skipped":
            continue  # a left-out operator
        outcome = result.get("test_outcome")
        if (path, *changed_lines(result.get("diff") or "")) in skip:
            outcome = "equivalent"
        counts[outcome] += 1
        if outcome == "survived" and "no test runs this line" in (result.get("output") or ""):
            counts["unrun"] += 1
        if survivors and outcome == "survived":
            print(result["diff"])
    return counts


def report(files: list[str], survivors: bool):
    """The table of the kept sessions (.mutation/) of files unchanged since their run, and the files
    without one; runs nothing."""
    kept = {path: _kept(path, ROOT / path) for path in files}
    if any(kept.values()):
        _table([(path, count(path, session, survivors)) for path, session in kept.items() if session])
    else:
        print(f"No kept session in {SESSIONS.relative_to(ROOT)}/ (a fresh clone has none): the table of the last "
              "full run is in docs/testing.md.")
    unrun = [path for path, session in kept.items() if not session]
    if unrun:
        print("\nNo run of the current version of:", *unrun, sep="\n  ")
        print("Run them with: nice -n 10 python tools/mutation.py FILE...")


def _kept(path: str, current: Path) -> Path | None:
    """The kept session of `path` (.mutation/), if it was made on the source now in `current`."""
    name = path.replace("/", "_")
    session, source = SESSIONS / f"{name}.sqlite", SESSIONS / f"{name}.original"
    return session if session.exists() and source.exists() and source.read_bytes() == current.read_bytes() else None


class Interrupted(Exception):
    """The run was stopped; args[0] holds the counts of the file it stopped in."""


def copy_tree() -> Path:
    """The working tree (tracked and untracked files, not ignored ones) in a temporary folder, next
    to a link to ../shared, so that mutants never touch the real files."""
    top = Path(tempfile.mkdtemp(prefix="mutation-"))
    (top / "shared").symlink_to((ROOT.parent / "shared").resolve())
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (top / "repo" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, top / "repo" / name)
    for git in (["init", "-q"], ["add", "-A"]):  # a repository of its own: the deploy tests ask git for the files
        subprocess.run(["git", *git], cwd=top / "repo", check=True)
    for link in (".cache",):
        if (ROOT / link).exists():
            (top / "repo" / link).symlink_to((ROOT / link).resolve())
    return top


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help=f"some of: {' '.join(TARGETS)} (default: all)")
    parser.add_argument("--survivors", action="store_true", help="print the diff of each surviving mutant")
    parser.add_argument("--again", action="store_true",
                        help="keep the killed mutants of the last run of an unchanged file, run the rest "
                             "(valid when tests were only added or strengthened since)")
    parser.add_argument("--report", action="store_true", help="the table of the last runs (.mutation/); runs nothing")
    parser.add_argument("--mutant", metavar="FILE", help=argparse.SUPPRESS)  # cosmic-ray's test command
    args = parser.parse_args()
    if args.mutant:
        return run_mutant(args.mutant)
    if args.report:
        return report(args.files or list(TARGETS), args.survivors)
    unknown = set(args.files) - set(TARGETS)
    if unknown:
        parser.error(f"not a target: {' '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill PID stops it as Ctrl-C does
    top = copy_tree()
    rows = []
    try:
        for path in args.files or TARGETS:
            try:
                counts = run(path, top / "repo", args.survivors, args.again)
            except Interrupted as stopped:
                rows.append((f"{path} (stopped)", stopped.args[0]))
                break
            rows.append((path, counts))
            print(_row(path, counts), flush=True)
    finally:
        shutil.rmtree(top)
    _table(rows)


def _table(rows: list[tuple[str, Counter]]):
    totals = sum((counts for _, counts in rows), Counter())
    print("\n".join(["", f"{'file':34} killed survived (no test runs it) equivalent incompetent not-run  killed%"]
                    + [_row(path, counts) for path, counts in rows] + [_row("total", totals)]))


def _row(path: str, counts: Counter) -> str:
    judged = counts["killed"] + counts["survived"]
    share = f"{100 * counts['killed'] / judged:.1f}%" if judged else "-"
    return (f"{path:34} {counts['killed']:6} {counts['survived']:8} {counts['unrun']:17} {counts['equivalent']:10} "
            f"{counts['incompetent']:11} {counts['pending']:7}  {share:>7}")


if __name__ == "__main__":
    main()
