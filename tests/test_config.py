import copy

import pytest
import yaml

from pipeline.config import ParamsError, load_params, parse_params


@pytest.fixture
def tiny(root):
    return yaml.safe_load((root / "profiles" / "tiny.yaml").read_text())


@pytest.mark.parametrize(
    "name", ["params.yaml", "profiles/tiny.yaml", "profiles/small.yaml", "profiles/gpu-librispeech100.yaml"]
)
def test_shipped_profiles_validate(root, name):
    params = load_params(root / name)
    assert params.teacher_names()[0] == "guide"
    assert {"baseline", "distilled"} <= set(params.students)


def test_unknown_top_level_key_is_named(tiny):
    tiny["distil"] = {"temperature": 3}
    with pytest.raises(ParamsError) as err:
        parse_params(tiny)
    msg = str(err.value)
    assert "unknown key 'distil'" in msg
    assert "distill" in msg  # the valid keys are listed


def test_mistyped_nested_key_lists_valid_keys(tiny):
    tiny["distill"]["temprature"] = 3.0
    with pytest.raises(ParamsError) as err:
        parse_params(tiny)
    msg = str(err.value)
    assert "unknown key 'distill.temprature'" in msg
    assert "temperature" in msg and "top_k" in msg


def test_a_moved_key_says_where_it_went(tiny):
    tiny["evaluate"] = {"rtf_utterances": 20}
    moved = r"unknown key 'evaluate\.rtf_utterances'; it moved to export\.rtf_utterances"
    with pytest.raises(ParamsError, match=moved):
        parse_params(tiny)


def test_mistyped_key_inside_a_named_teacher(tiny):
    tiny["teachers"]["t1"]["model"]["d_modle"] = 64
    with pytest.raises(ParamsError) as err:
        parse_params(tiny)
    msg = str(err.value)
    assert "teachers.t1.model.d_modle" in msg
    assert "d_model" in msg


def test_wrong_type_and_range(tiny):
    bad = copy.deepcopy(tiny)
    bad["distill"]["temperature"] = "hot"
    with pytest.raises(ParamsError, match="distill.temperature"):
        parse_params(bad)
    bad = copy.deepcopy(tiny)
    bad["students"]["distilled"]["alpha"] = 1.5
    with pytest.raises(ParamsError, match="students.distilled.alpha"):
        parse_params(bad)


def test_baseline_must_be_undistilled(tiny):
    tiny["students"]["baseline"]["alpha"] = 0.5
    with pytest.raises(ParamsError, match="baseline.alpha must be 0"):
        parse_params(tiny)


def test_missing_required_student(tiny):
    del tiny["students"]["distilled"]
    with pytest.raises(ParamsError, match="distilled"):
        parse_params(tiny)


def test_heads_must_divide_d_model(tiny):
    tiny["student"]["num_heads"] = 3
    with pytest.raises(ParamsError, match="divisible"):
        parse_params(tiny)


def test_students_set_their_own_epochs(tiny):
    """Every model sets its own budget, so teachers read all of train: and a change of a
    student's epochs retrains no teacher; the old shared train.epochs is refused by name."""
    del tiny["students"]["baseline"]["epochs"]
    with pytest.raises(ParamsError, match="students.baseline.epochs"):
        parse_params(tiny)
    tiny["students"]["baseline"]["epochs"] = 2
    tiny["train"]["epochs"] = 2
    with pytest.raises(ParamsError, match="train.epochs.*moved to students.<name>.epochs"):
        parse_params(tiny)


def test_a_teacher_without_epochs_is_rejected(tiny):
    del tiny["teachers"]["t1"]["epochs"]
    with pytest.raises(ParamsError, match="teachers.t1.epochs"):
        parse_params(tiny)


def test_a_distilled_student_needs_a_twin_with_its_recipe(tiny):
    del tiny["students"]["distilled"]["twin"]
    with pytest.raises(ParamsError, match=r"students.distilled.twin is required"):
        parse_params(copy.deepcopy(tiny))
    tiny["students"]["distilled"]["twin"] = "t1"  # a guided teacher is not a twin
    with pytest.raises(ParamsError, match=r"'t1' is neither guide nor a student with alpha 0"):
        parse_params(copy.deepcopy(tiny))
    tiny["students"]["distilled"].update(twin="baseline", epochs=7)
    with pytest.raises(ParamsError, match=r"'baseline' differs in epochs"):
        parse_params(copy.deepcopy(tiny))
    tiny["students"]["distilled"].update(epochs=tiny["students"]["baseline"]["epochs"], labelled_fraction=0.2)
    with pytest.raises(ParamsError, match=r"'baseline' differs in labelled_fraction"):
        parse_params(copy.deepcopy(tiny))


def test_the_member_student_takes_the_guide_as_twin(tiny):
    params = parse_params(copy.deepcopy(tiny))
    assert params.twin_model("member") == "teacher.guide"
    assert params.student_model("member") == params.guide.model
    assert params.student_model("distilled") == params.student
    assert params.distilled_students() == ["distilled", "member"]
    tiny["students"]["member"]["model"]["d_model"] = 32
    with pytest.raises(ParamsError, match=r"'guide' differs in model"):
        parse_params(tiny)


def test_student_names_do_not_clash_with_teachers(tiny):
    tiny["students"]["t1"] = {"alpha": 0.0, "epochs": 2}
    with pytest.raises(ParamsError, match=r"t1 is also a teacher's name"):
        parse_params(tiny)
