"""Run by test_postgres: one of several processes popping the same studies with optsweep's pop.

``python _popper.py URL CONFIG GO_DIR ROUNDS LIMIT``: load the studies ``pop<r>`` of every
round r, then for each wait for the file GO_DIR/go<r>, pop batches until nothing waits, print
the popped trial numbers as one JSON line.
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
    # Every round's study loaded and the pop's queries run once before "ready": a pop of 32
    # takes milliseconds, loading a study and the first queries far more, so a popper still
    # warming up would find its round drained by another.
    rounds_ = [studies.load_study(url, f"pop{r}", liveness) for r in range(int(rounds))]
    for study in rounds_:
        studies._waiting(study)
        studies._claim(study, [])
    print("ready", flush=True)
    for round_, study in enumerate(rounds_):
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
