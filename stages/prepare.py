"""Stage ``prepare``: build the corpus named by ``data.source``.

Usage: python stages/prepare.py --audio data/audio --manifests data/manifests --metrics reports/prepare.json
"""

from pathlib import Path

from pipeline.data import prepare
from pipeline.io import write_json
from pipeline.stage import parser, run


def main(args, params):
    write_json(args.metrics, prepare(params.data, Path(args.audio), Path(args.manifests)))


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--audio", required=True)
    p.add_argument("--manifests", required=True)
    p.add_argument("--metrics", required=True)
    run(main, p.parse_args())
