"""Draw the size-ladder plot (test WER against student parameters, twins and distilled students).

The figures come from `experiments/size_ladder.json`, written by `experiments/sweep.py
ladder` (docs/distillation.md): the default run's small pair, a third-size pair the sweep
trains, and the default run's member-size pair (`student.member` against `teacher.t1`).

Usage: python experiments/size_ladder.py [experiments/size_ladder.json] [docs/size_ladder.png]
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from pipeline.evaluate.plots import size_ladder  # noqa: E402


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/size_ladder.json")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/size_ladder.png")
    data = json.loads(source.read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    size_ladder(data["rows"], out, data.get("ensemble"))
    print(out)


if __name__ == "__main__":
    main()
