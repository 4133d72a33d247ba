"""Run by test_postgres: one of several processes popping the same studies with optsweep's pop.

``python _popper.py URL CONFIG GO_DIR ROUNDS LIMIT``: for each round r, load study
``pop<r>``, wait for the file GO_DIR/go<r>, pop batches until nothing waits, print the popped
trial numbers as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from optsweep import optuna_private as private
from optsweep import study as studies
from optsweep.config import expand, load_sweep


def main() -> None:
    url, config, go_dir, rounds, limit = sys.argv[1:6]
    specs = {t.key: t for t in expand(load_sweep(config))}
    liveness = studies.Liveness(heartbeat=5, grace=60)
    print("ready", flush=True)
    for round_ in range(int(rounds)):
        # loaded before the start: a pop of 32 takes milliseconds, loading a study more
        study = studies.load_study(url, f"pop{round_}", liveness)
        go = Path(go_dir) / f"go{round_}"
        while not go.exists():
            time.sleep(0.001)
        popped: list[int] = []
        while batch := studies.pop_batch(study, specs, int(limit)):
            popped += [trial_id for trial_id, _ in batch]
        number = {private.trial_id(t): t.number for t in study.get_trials(deepcopy=False)}
        print(json.dumps([number[i] for i in popped]), flush=True)


if __name__ == "__main__":
    main()
