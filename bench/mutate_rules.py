"""Mutation testing of the VJP rules: does the test suite notice each wrong rule?

    python bench/mutate_rules.py                  # every rule of every primitive, every kind
    python bench/mutate_rules.py --quick          # zero and doubled mutants only
    python bench/mutate_rules.py --ops maximum,sum --jobs 2
    python bench/mutate_rules.py --ops untake --kinds nondifferentiable

Primitives are found by importing the `autodiff` and `nets` packages and walking the loaded
modules for ops with rules. Each rule is replaced in turn by a wrong one (see
`mutant_plugin.KINDS`): zero, doubled, negated, the rule of another argument (or the
cotangent transposed where there is none), the right rule computed on unboxed values (so
only derivatives of second order and above go wrong), and for the ties of max, min,
maximum and minimum, the whole cotangent to the first tied entry. Each mutant runs the
test suite in its own process (`pytest -x` with the `ci` hypothesis profile), the tests
named after its op first; a failure kills it. Prints the score per op and overall, and
the survivors; exits 1 if any survive.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import mutant_plugin  # noqa: E402

PACKAGES = ("autodiff", "nets")
# Fast modules first: with -x most mutants die within seconds.
TESTS = ["tests/test_ops.py", "tests/test_new_ops.py", "tests/test_engine.py",
         "tests/test_adversarial.py", "tests/test_transforms.py", "tests/test_conv.py",
         "tests/test_jax_oracle.py"]
QUICK_KINDS = ("zero", "doubled")
# Ops whose tests carry another name: the op they serve, or NumPy's.
TESTED_AS = {
    "absolute": ("abs",), "pnorm": ("norm",), "logabsdet": ("slogdet",),
    "reverse_linear_scan": ("cumprod", "prod"), "untake": ("take",),
    "untake_along_axis": ("take_along_axis", "sort"), "undiagonal": ("diagonal", "trace"),
    "scatter_add": ("getitem", "index"), "getitem": ("index", "slice"),
}
TIMEOUT_S = 1200


def discover() -> dict[str, object]:
    """Every primitive with rules, once each, keyed `module:attribute`."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional extra that is not installed
                continue
    found: dict[str, object] = {}
    seen: set[int] = set()
    modules = sorted(name for name in sys.modules if name.split(".")[0] in PACKAGES)
    for module in modules:
        namespace = vars(sys.modules[module])
        # An op's own name first (max before its alias amax), then public names.
        names = sorted(namespace, key=lambda n: (
            n != getattr(namespace[n], "__name__", None), n.startswith("_"), n))
        for name in names:
            op = namespace[name]
            if mutant_plugin.is_primitive(op) and id(op) not in seen:
                if mutant_plugin.get_rules(op) is not None:
                    seen.add(id(op))
                    found[f"{module}:{name}"] = op
    return found


def mutants(ops: dict[str, object], kinds) -> list[str]:
    """`module:name:argnum:kind` for each rule and each kind of mutant that applies to it."""
    specs = []
    for key, op in ops.items():
        rules = mutant_plugin.get_rules(op)
        argnums = ["*"] if not isinstance(rules, tuple) else [
            str(i) for i, rule in enumerate(rules) if rule is not None]
        for argnum in argnums:
            for kind in kinds:
                if mutant_plugin.mutant_rules(op, key, argnum, kind) is not None:
                    specs.append(f"{key}:{argnum}:{kind}")
    return specs


def _keyword(spec: str) -> str:
    """A pytest -k expression for the tests named after the mutated op (`_einsum_op`:
    einsum; `max`: max and amax rows...)."""
    name = spec.split(":")[1].removeprefix("_").removesuffix("_op")
    op_name = getattr(mutant_plugin.find_op(":".join(spec.split(":")[:2])), "__name__", name)
    names = {name, op_name.removeprefix("_"), *TESTED_AS.get(name, ())}
    return " or ".join(sorted(names))


def run_suite(spec: str | None) -> tuple[str, float]:
    """Run the tests with the mutant `spec` (None: none); 'killed', 'survived' or an error.

    The tests named after the op run first, then, if none of them failed, all of them: a
    mutant mostly dies in its own op's tests, in a fraction of the whole run's time."""
    if spec:
        outcome, seconds = _run_pytest(spec, ["-k", _keyword(spec)])
        if outcome == "killed":
            return outcome, seconds
        rest, more = _run_pytest(spec, [])
        return rest, seconds + more
    return _run_pytest(None, [])


def _run_pytest(spec: str | None, selection: list[str]) -> tuple[str, float]:
    env = dict(os.environ, HYPOTHESIS_PROFILE="ci")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "bench"),
                                                      env.get("PYTHONPATH")]))
    env.pop(mutant_plugin.MUTANT_VARIABLE, None)
    if spec:
        env[mutant_plugin.MUTANT_VARIABLE] = spec
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-p", "mutant_plugin", *selection, *TESTS]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "killed (timeout)", time.perf_counter() - start
    # 5: -k selected no test, which kills nothing
    outcome = {0: "survived", 1: "killed", 5: "survived"}.get(done.returncode)
    if outcome is None:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
        outcome = f"error (pytest exit {done.returncode}: {' '.join(tail)})"
    return outcome, time.perf_counter() - start


def report(results: dict[str, str]) -> int:
    by_op: dict[str, list[tuple[str, str]]] = {}
    for spec, outcome in results.items():
        module, name, argnum, kind = spec.split(":")
        by_op.setdefault(f"{module}:{name}", []).append((f"{argnum}:{kind}", outcome))
    print("\nper op (killed / mutants):")
    survivors = []
    for op, rows in sorted(by_op.items()):
        killed = sum(outcome.startswith("killed") for _, outcome in rows)
        print(f"  {op:40s} {killed:3d} / {len(rows):3d}")
        survivors += [f"{op}:{what} ({outcome})" for what, outcome in rows
                      if not outcome.startswith("killed")]
    killed = sum(outcome.startswith("killed") for outcome in results.values())
    total = len(results)
    print(f"\nmutation score: {killed} / {total} killed ({100 * killed / max(total, 1):.1f}%)")
    for line in survivors:
        print(f"  survived: {line}")
    return 1 if survivors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", help="comma-separated op names (default: every primitive)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="mutants run in parallel (default: one per CPU)")
    parser.add_argument("--quick", action="store_true", help="zero and doubled mutants only")
    parser.add_argument("--kinds", help="comma-separated kinds of mutant (default: all of "
                        f"{', '.join(mutant_plugin.KINDS)})")
    args = parser.parse_args(argv)
    ops = discover()
    if args.ops:
        wanted = set(args.ops.split(","))
        ops = {key: op for key, op in ops.items()
               if key.split(":")[1] in wanted or getattr(op, "__name__", "") in wanted}
        if not ops:
            parser.error(f"no primitive is named any of {sorted(wanted)}")
    kinds = QUICK_KINDS if args.quick else mutant_plugin.KINDS
    if args.kinds:
        kinds = tuple(args.kinds.split(","))
        if not set(kinds) <= set(mutant_plugin.KINDS):
            parser.error(f"unknown kinds {sorted(set(kinds) - set(mutant_plugin.KINDS))}")
    specs = mutants(ops, kinds)
    print(f"{len(ops)} primitives, {len(specs)} mutants, {args.jobs} at a time")
    baseline, seconds = run_suite(None)
    if baseline != "survived":
        print(f"the tests fail without any mutant ({baseline}); fix them first")
        return 2
    print(f"the unmutated suite passes in {seconds:.0f} s")
    results: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for spec, (outcome, seconds) in zip(specs, pool.map(run_suite, specs)):
            results[spec] = outcome
            print(f"{outcome:10s} {spec} ({seconds:.0f} s)", flush=True)
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
