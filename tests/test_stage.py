"""Stage scripts: the user's errors are one line; a bug keeps its traceback."""

import argparse
import logging
from pathlib import Path

import pytest

from pipeline.errors import InputError, MissingError
from pipeline.profiles import Profile
from pipeline.stage import run


def args(tmp_path):
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "params.yaml").write_text(Profile("tiny", root / "params.yaml", root).text_applied())
    return argparse.Namespace(params=str(tmp_path / "params.yaml"))


@pytest.mark.parametrize("error", [InputError("data/x.wav: empty audio"), MissingError("no speaker for u1")])
def test_input_errors_exit_1_with_one_line(tmp_path, caplog, error):
    def main(_args, _params):
        raise error

    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        run(main, args(tmp_path))
    assert exit_.value.code == 1
    assert caplog.records[-1].getMessage() == str(error).strip("'")
    assert caplog.records[-1].exc_info is None


def test_a_bug_keeps_its_traceback(tmp_path):
    def main(_args, params):
        return params.students["no-such-student"]

    with pytest.raises(KeyError, match="no-such-student"):
        run(main, args(tmp_path))
