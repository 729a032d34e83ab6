"""Stage ``prepare``: build the corpus named by ``data.source``; see :mod:`pipeline.prepare.stage`.

Usage: python stages/prepare.py --audio data/audio --manifests data/manifests --report reports/prepare.json
"""

from pipeline.prepare.stage import prepare_stage
from pipeline.stage import parser, run

if __name__ == "__main__":
    run(prepare_stage, parser(__doc__, "audio", "manifests", "report").parse_args())
