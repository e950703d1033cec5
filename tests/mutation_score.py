"""Prints the mutation score of the last `mutmut run` (`make mutate`): the mutants the tests
detected (killed, or made to run past mutmut's timeout) out of all those that ran, and the
survivors by module. Exits 1 under ``--floor`` when the score is below it."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

STATS = Path("mutants/mutmut-cicd-stats.json")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--floor", type=float, default=0.0, help="fail under this percentage")
    floor = parser.parse_args().floor
    s = json.loads(STATS.read_text())
    detected = s["killed"] + s["timeout"]
    # Mutants not run yet (an interrupted run) count neither way.
    ran = detected + s["survived"] + s["no_tests"] + s["suspicious"] + s["segfault"]
    score = 100 * detected / ran if ran else 0.0
    results = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    survivors = Counter(line.strip().split("__mutmut_")[0].split(".x")[0] for line in results.splitlines()
                        if line.strip().endswith(": survived"))  # fmt: skip
    for module, n in sorted(survivors.items()):
        print(f"  {n:4d} surviving in {module}")
    print(f"mutation score: {detected} of {ran} mutants detected = {score:.1f}% "
          f"({s['survived']} survived, {s['no_tests']} without tests)")  # fmt: skip
    return 1 if score < floor else 0


if __name__ == "__main__":
    sys.exit(main())
