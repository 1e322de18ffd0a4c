"""Mutation score of the core decisions: mutmut mutates the functions below, the unit tests
(pyproject.toml [tool.mutmut]) must kill the mutants. Prints the score per module and every
surviving mutant. `make mutation` runs it from scratch (mutmut's cache cannot see changes to
pyproject.toml); `--report` only prints the last run's results.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.85
# module -> the functions that decide something (mutmut's names: x_<function>, xǁClassǁmethod).
DECISIONS = {
    "registry": ["x_decide", "x_is_missing", "x_get_alias_version", "x_get_snapshot_batch",
                 "x_promote_version", "x_rollback_champion", "x_plan_rollback"],
    "data.validate": ["x_find_rejections", "x_describe_rejection", "x_safe_text"],
    "data.dataset": ["x_derive_id"],
    "retrain": ["x_choose_reason", "x_find_missing_data", "x_check_retraining", "x_choose_branch"],
    "features": ["x__columns", "x_clean_text", "x_strip_html", "xǁ_CombiningMarksǁ__missing__",
                 "xǁProductTextCleanerǁ*"],
    "serving.budget": ["x_clean_items", "x_length_errors", "x_check_batch_size"],
}  # fmt: skip
KILLED = {1, 3, 36, 24, -24, 152, 255}  # test failure, pytest error, timeouts (mutmut's codes)


def patterns() -> list[str]:
    """mutmut name globs of every mutant of the decision functions."""
    return [f"prodcat.{module}.{name}__mutmut_*" for module, names in DECISIONS.items()
            for name in names]  # fmt: skip


def load_results() -> dict[str, int | None]:
    """Exit code of every mutant of the decision functions, from mutmut's meta files."""
    results: dict[str, int | None] = {}
    for meta in (ROOT / "mutants" / "src" / "prodcat").rglob("*.py.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, p) for p in patterns()):
                results[name] = code
    return results


def print_scores(results: dict[str, int | None]) -> bool:
    """One line per module and the survivors; True when every module reaches the target."""
    total, killed = Counter(), Counter()
    survivors = []
    for name, code in sorted(results.items()):
        module = next(m for m in DECISIONS if name.startswith(f"prodcat.{m}.x"))
        total[module] += 1
        if code in KILLED:
            killed[module] += 1
        else:
            survivors.append(f"{name} (exit code {code})")
    print(f"{'module':<16}{'killed':>8}{'mutants':>9}{'score':>8}")
    for module in DECISIONS:
        score = killed[module] / total[module] if total[module] else 0.0
        print(f"{module:<16}{killed[module]:>8}{total[module]:>9}{score:>8.1%}")
    overall = sum(killed.values()) / max(sum(total.values()), 1)
    print(f"{'all':<16}{sum(killed.values()):>8}{sum(total.values()):>9}{overall:>8.1%}"
          f"   (target {TARGET:.0%} per module)")  # fmt: skip
    print("surviving mutants (see `mutmut show NAME`):" if survivors else "no surviving mutant")
    for line in survivors:
        print("  " + line)
    return all(total[m] and killed[m] / total[m] >= TARGET for m in DECISIONS)


def main() -> int:
    if "--report" not in sys.argv:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        mutmut = Path(sys.executable).parent / "mutmut"
        subprocess.run([str(mutmut), "run", *patterns()], cwd=ROOT, check=False)
    return 0 if print_scores(load_results()) else 1


if __name__ == "__main__":
    sys.exit(main())
