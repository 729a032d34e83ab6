"""Stage ``prepare``: build the corpus named by ``data.source``.

Usage: python stages/prepare.py --audio data/audio --manifests data/manifests --report reports/prepare.json
"""

from pathlib import Path

from pipeline.io import write_json
from pipeline.prepare.corpus import prepare
from pipeline.stage import parser, run


def main(args, params):
    write_json(args.report, prepare(params.data, Path(args.audio), Path(args.manifests)))


if __name__ == "__main__":
    run(main, parser(__doc__, "audio", "manifests", "report").parse_args())
