"""Stage ``export``: the distilled student as TorchScript, ONNX fp32 and ONNX int8, with
parity checks, and a single-thread CPU real-time-factor benchmark of the ensemble and students.

Writes ``export/`` (see :mod:`pipeline.export`), ``reports/export.json``
(``rtf``, ``sizes``, ``parity``, ``wer``, ``goals``; kept apart from
``reports/metrics.json``, which the evaluate stage owns) and the WER against
real-time factor plot.

Usage: python stages/export.py --teachers models/teachers --students models/students \
         --features data/features --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --eval-metrics reports/metrics.json --out export --metrics reports/export.json \
         --plot reports/plots/wer_vs_rtf.png
"""
from pathlib import Path

import torch

from pipeline import export as ex
from pipeline.benchmark import all_runners, measure_rtf, speed_goals
from pipeline.io import atomic_path, read_json, write_json
from pipeline.model import load_model
from pipeline.plots import wer_vs_rtf
from pipeline.stage import parser, run
from pipeline.store import Store
from pipeline.tokenizer import load_tokenizer


def main(args, params):
    # Batch-1 inference of small models: one thread is fastest and spares the other cores.
    torch.set_num_threads(1)
    sp = load_tokenizer(args.tokenizer)
    teacher_files = [Path(args.teachers) / f"{n}.pt" for n in params.teacher_names()]
    student_files = {n: Path(args.students) / f"{n}.pt" for n in ("baseline", "distilled")}
    students = {n: load_model(f) for n, f in student_files.items()}
    test = ex.load_split(Path(args.features) / "test", Path(args.manifests) / "test.jsonl")
    bench = test[:params.evaluate.rtf_utterances]
    with atomic_path(args.out) as out:
        out.mkdir()
        ex.write_artifacts(students["distilled"], out, Path(args.tokenizer),
                           Store(Path(args.features) / "test").meta, params.export.opset)
        report = ex.check_parity(students["distilled"], out, [u["feats"] for u in test],
                                 [u["text"] for u in test], sp, params.export)
        runners = all_runners([load_model(f) for f in teacher_files], students, out,
                              params.ensemble.combine)
        rtf = measure_rtf(runners, [u["feats"] for u in bench],
                          sum(u["duration"] for u in bench), params.export.rtf_repeats)
        sizes = ex.file_sizes({"ensemble": teacher_files,
                               **{f"student.{n}.torch": [f] for n, f in student_files.items()},
                               "student.distilled.torchscript": [out / ex.TORCHSCRIPT],
                               "student.distilled.onnx": [out / ex.ONNX_FP32],
                               "student.distilled.onnx_int8": [out / ex.ONNX_INT8]})
    evaluated = read_json(args.eval_metrics)["wer"]["test"]
    wer = {"ensemble": evaluated["ensemble"], "student.baseline.torch": evaluated["student.baseline"],
           **report["wer"]}
    wer_vs_rtf([(name, rtf[name], wer[name]) for name in rtf], Path(args.plot))
    write_json(args.metrics, {"rtf": rtf, "sizes": sizes, "parity": report["parity"], "wer": wer,
                              "goals": speed_goals(rtf),
                              "rtf_utterances": len(bench),
                              "rtf_audio_seconds": round(sum(u["duration"] for u in bench), 3)})


if __name__ == "__main__":
    p = parser(__doc__)
    for flag in ("teachers", "students", "features", "manifests", "tokenizer", "eval-metrics",
                 "out", "metrics", "plot"):
        p.add_argument(f"--{flag}", required=True)
    run(main, p.parse_args())
