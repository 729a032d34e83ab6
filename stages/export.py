"""Stage ``export``: every distilled student (``export/<name>/``) as TorchScript, ONNX fp32
and ONNX int8 with its decoding resources (lexicon, LM, the LM weight and word score chosen
on dev), with parity checks (logits against eager PyTorch, test WER of every format), then
the single-thread CPU real-time-factor benchmark of the ensemble, the students in PyTorch and
the exported students, side by side in one run, and the deployed runtimes end to end (file
read, fbank, model, the default decoder) with their test WER.

Writes ``export/`` (see :mod:`pipeline.export.formats`) and ``reports/export.json``
(``parity``, ``wer``, ``decoding`` (the dev grid), ``deployed``, ``rtf``, ``sizes``,
``goals``); ``evaluate`` copies the benchmark into ``reports/metrics.json`` (see
:mod:`pipeline.export.benchmark`).

Usage: python stages/export.py --teachers models/teachers --students models/students \
         --features data/features --manifests data/manifests --tokenizer data/tokenizer/spm.model \
         --lm data/lm --out export --report reports/export.json
"""

import logging
from pathlib import Path

import torch

from pipeline.deploy.runtime import ONNX_FP32, ONNX_INT8, STREAMING, single_thread, torch_runner
from pipeline.deploy.streaming import StreamingModel, time_streaming
from pipeline.deploy.transcribe import ExportedModel, end_to_end_rtf
from pipeline.export import formats as ex
from pipeline.export.benchmark import run_benchmark
from pipeline.io import atomic_path, read_jsonl, write_json
from pipeline.model.conformer import load_model, model_files
from pipeline.stage import parser, run
from pipeline.store import Store
from pipeline.tokens import load_tokenizer

log = logging.getLogger("asr_distill")


def main(args, params):
    torch.set_num_threads(1)  # batch-1 parity runs and the benchmark: one thread
    sp = load_tokenizer(args.tokenizer)
    files = model_files(params, args.teachers, args.students)
    students = {n: load_model(files[f"student.{n}"]) for n in params.student_names()}
    test = ex.load_split(Path(args.features) / "test", Path(args.manifests) / "test.jsonl")
    dev = ex.load_split(Path(args.features) / "dev", Path(args.manifests) / "dev.jsonl")
    audio = {r["id"]: Path(r["audio"]) for r in read_jsonl(Path(args.manifests) / "test.jsonl")}
    decoding, resources = params.decoding, Path(args.lm)
    distilled = params.distilled_students()
    twins = sorted(
        {params.twin_model(n) for n in distilled if params.twin_model(n).startswith("teacher.")}
    )  # timed beside their students
    report: dict = {"parity": {}, "wer": {}, "decoding": {}, "deployed": {}}
    with atomic_path(args.out) as out:
        out.mkdir()
        for name in distilled:  # export/<name>/: every student that learned from the teachers
            log.info("export: student.%s", name)
            (out / name).mkdir()
            weights = {"lm_weight": 0.0, "word_score": 0.0}  # the LM's: none without lexicon+lm
            if "lexicon+lm" in decoding.decoders:
                with single_thread():
                    dev_logits = ex.all_logits(torch_runner(students[name].eval()), [u["feats"] for u in dev])
                chosen = ex.choose_lm_weights(dev_logits, [u["text"] for u in dev], sp, resources, decoding)
                report["decoding"][f"student.{name}"] = chosen
                weights = {k: chosen[k] for k in weights}
            ex.write_artifacts(
                students[name],
                out / name,
                Path(args.tokenizer),
                Store(Path(args.features) / "test").meta,
                params.export.opset,
                ex.decoding_entry(decoding, **weights),
                resources,
            )
            checked = ex.check_parity(
                students[name],
                out / name,
                [u["feats"] for u in test],
                [u["text"] for u in test],
                sp,
                params.export,
                f"student.{name}",
            )
            report["parity"][f"student.{name}"] = checked["parity"]
            report["wer"].update(checked["wer"])
            for fmt, file in (("onnx", ONNX_FP32), ("int8", ONNX_INT8)):
                report["deployed"][f"student.{name}.{fmt}"] = deployed(out / name / file, test, audio, params)
            if students[name].cfg.streaming:  # one chunk per call, one thread, as a device runs it
                timed = test[: params.export.rtf_utterances]
                report.setdefault("streaming", {})[f"student.{name}"] = time_streaming(
                    StreamingModel.load(out / name / STREAMING),
                    [u["feats"] for u in timed],
                    sum(u["duration"] for u in timed),
                    params.export.rtf_repeats,
                )
        teachers = {n: load_model(files[f"teacher.{n}"]) for n in params.teacher_names()}
        report.update(
            run_benchmark(
                teachers,
                students,
                files,
                {n: out / n for n in distilled},
                test[: params.export.rtf_utterances],
                params.ensemble.combine,
                params.export.rtf_repeats,
                twins,
                goals=params.export.goals,
            )
        )
    write_json(args.report, report)
    log.info(
        "int8 student vs ensemble: %sx faster, RTF %s (goals: %gx, RTF <= %g)",
        report["goals"]["int8_speedup"],
        report["rtf"]["student.distilled.int8"],
        params.export.goals.min_speedup,
        params.export.goals.max_rtf,
    )


def deployed(model_file: Path, test: list[dict], audio: dict[str, Path], params) -> dict:
    """One exported runtime as ``asr-distill transcribe`` runs it (one thread, its default
    decoder): test WER with its interval from the test fbank, and the end-to-end real-time
    factor on the benchmark's utterances read from their audio files."""
    with single_thread():
        model = ExportedModel.load(model_file, threads=1)
        texts = [model.decode(u["feats"]) for u in test]
        result = ex.deployed_wer(texts, [u["text"] for u in test], model.decoder.name, params.evaluate)
        files = [audio[u["id"]] for u in test[: params.export.rtf_utterances]]
        result.update(end_to_end_rtf(model, files, params.export.rtf_repeats))
    log.info("deployed %s: %s", model_file, result)
    return result


if __name__ == "__main__":
    flags = ("teachers", "students", "features", "manifests", "tokenizer", "lm", "out", "report")
    run(main, parser(__doc__, *flags).parse_args())
