import copy

import pytest

from pipeline.config import (
    DEFAULT_PARAMS,
    ParamsError,
    default_params,
    load_params,
    parse_params,
    read_params,
)
from pipeline.profiles import Profile


@pytest.fixture
def tiny(root):
    """params.yaml with profiles/tiny.yaml applied, as a raw mapping."""
    return Profile("tiny", root / "params.yaml", root).raw()


@pytest.mark.parametrize("name", ["params.yaml", "tiny", "small", "gpu-librispeech100"])
def test_shipped_profiles_validate(root, name):
    if name == "params.yaml":
        params = load_params(root / name)
    else:
        params = Profile(name, root / "params.yaml", root).result
    assert params.teacher_names()[0] == "guide"
    assert "baseline" in params.twins and "distilled" in params.students
    assert params.student_names()[0] == "baseline"


def test_unknown_top_level_key_is_named(tiny):
    tiny["distil"] = {"temperature": 3}
    with pytest.raises(ParamsError) as err:
        parse_params(tiny)
    msg = str(err.value)
    assert "unknown key 'distil'" in msg
    assert "soft_targets" in msg  # the valid keys are listed


def test_mistyped_nested_key_lists_valid_keys(tiny):
    tiny["soft_targets"]["temprature"] = 3.0
    with pytest.raises(ParamsError) as err:
        parse_params(tiny)
    msg = str(err.value)
    assert "unknown key 'soft_targets.temprature'" in msg
    assert "temperature" in msg and "top_k" in msg


def test_a_moved_key_says_where_it_went(tiny):
    tiny["evaluate"] = {"rtf_utterances": 20}
    moved = r"unknown key 'evaluate\.rtf_utterances'; it moved to export\.rtf_utterances"
    with pytest.raises(ParamsError, match=moved):
        parse_params(tiny)


def test_mistyped_key_inside_a_named_teacher(tiny):
    tiny["teachers"]["others"]["t1"]["model"]["d_modle"] = 64
    with pytest.raises(ParamsError) as err:
        parse_params(tiny)
    msg = str(err.value)
    assert "teachers.others.t1.model.d_modle" in msg
    assert "d_model" in msg


def test_wrong_type_and_range(tiny):
    bad = copy.deepcopy(tiny)
    bad["soft_targets"]["temperature"] = "hot"
    with pytest.raises(ParamsError, match="soft_targets.temperature"):
        parse_params(bad)
    bad = copy.deepcopy(tiny)
    bad["students"]["distilled"]["alpha"] = 1.5
    with pytest.raises(ParamsError, match="students.distilled.alpha"):
        parse_params(bad)


def test_a_twin_has_no_alpha(tiny):
    tiny["twins"]["baseline"]["alpha"] = 0.0
    with pytest.raises(ParamsError) as err:
        parse_params(tiny)
    msg = str(err.value)
    assert "unknown key 'twins.baseline.alpha'; a twin trains on its transcripts alone" in msg
    assert "epochs" in msg and "seed" in msg  # the valid keys are listed


def test_a_student_with_alpha_0_belongs_under_twins(tiny):
    tiny["students"]["direct"] = {"alpha": 0.0, "epochs": 2, "seed": 0}
    with pytest.raises(ParamsError, match=r"alpha 0 are directly trained twins: move them under twins: "):
        parse_params(tiny)


def test_the_combined_layout_says_where_the_baseline_went(tiny):
    """The layout with every student under ``students`` (the twin with alpha 0) names twins."""
    old = copy.deepcopy(tiny)
    old["students"] = {"baseline": {**old.pop("twins")["baseline"], "alpha": 0.0}, **old["students"]}
    with pytest.raises(ParamsError) as err:
        parse_params(old)
    assert str(err.value) == (
        "params.yaml: students with alpha 0 are directly trained twins: move them under twins: "
        "(students.baseline -> twins.baseline), with their epochs, seed and own keys and without alpha"
    )


def test_a_twin_learns_from_transcripts_only(tiny):
    tiny["twins"]["baseline"]["pseudo_labels"] = True
    with pytest.raises(ParamsError, match="pseudo_labels is for distilled students"):
        parse_params(copy.deepcopy(tiny))
    tiny["twins"]["baseline"].update(pseudo_labels=False, kd_shift=2)
    with pytest.raises(ParamsError, match="kd_shift is for distilled students"):
        parse_params(tiny)


def test_a_name_is_a_twin_or_a_student(tiny):
    tiny["twins"]["distilled"] = copy.deepcopy(tiny["twins"]["baseline"])
    with pytest.raises(ParamsError, match="twins and students both name distilled"):
        parse_params(tiny)


def test_the_baseline_twin_is_required(tiny):
    tiny["twins"]["other"] = tiny["twins"].pop("baseline")
    with pytest.raises(ParamsError, match="twins: a 'baseline' twin is required"):
        parse_params(tiny)


def test_missing_required_student(tiny):
    del tiny["students"]["distilled"]
    with pytest.raises(ParamsError, match="distilled"):
        parse_params(tiny)


def test_heads_must_divide_d_model(tiny):
    tiny["student_defaults"]["model"]["num_heads"] = 3
    with pytest.raises(ParamsError, match="divisible"):
        parse_params(tiny)


def test_students_set_their_own_epochs(tiny):
    """Every model sets its own budget, so teachers read all of train: and a change of a
    student's epochs retrains no teacher; the old shared train.epochs is refused by name."""
    del tiny["twins"]["baseline"]["epochs"]
    with pytest.raises(ParamsError, match="twins.baseline.epochs"):
        parse_params(tiny)
    tiny["twins"]["baseline"]["epochs"] = 2
    tiny["train"]["epochs"] = 2
    with pytest.raises(
        ParamsError, match="train.epochs.*moved to twins.<name>.epochs and students.<name>.epochs"
    ):
        parse_params(tiny)


def test_a_teacher_without_epochs_is_rejected(tiny):
    del tiny["teachers"]["others"]["t1"]["epochs"]
    with pytest.raises(ParamsError, match="teachers.others.t1.epochs"):
        parse_params(tiny)


def test_a_distilled_student_needs_a_twin_with_its_recipe(tiny):
    del tiny["students"]["distilled"]["twin"]
    with pytest.raises(ParamsError, match=r"students.distilled.twin is required"):
        parse_params(copy.deepcopy(tiny))
    tiny["students"]["distilled"]["twin"] = "t9"
    with pytest.raises(ParamsError, match=r"'t9' is neither a teacher's name nor a key of twins"):
        parse_params(copy.deepcopy(tiny))
    guided = copy.deepcopy(tiny)  # a teacher trained with the guided-CTC term is not a twin
    guided["teachers"]["others"]["t1"]["fork"] = None
    guided["students"]["distilled"]["twin"] = "t1"
    with pytest.raises(ParamsError, match=r"'t1' trains with the guided-CTC term"):
        parse_params(guided)
    tiny["students"]["distilled"].update(twin="baseline", epochs=7)
    with pytest.raises(ParamsError, match=r"'baseline' differs in epochs"):
        parse_params(copy.deepcopy(tiny))
    tiny["students"]["distilled"].update(epochs=tiny["twins"]["baseline"]["epochs"], labelled_fraction=0.2)
    with pytest.raises(ParamsError, match=r"'baseline' differs in labelled_fraction"):
        parse_params(copy.deepcopy(tiny))


def test_a_twin_shares_its_students_stopping_rule_and_cap(tiny):
    """Twins are compared at convergence of both: the same rule and the same cap."""
    parse_params(copy.deepcopy(tiny))
    twin = copy.deepcopy(tiny)
    twin["twins"]["baseline"]["convergence"] = {"patience": 9, "min_improvement": 0.01}
    with pytest.raises(ParamsError, match=r"'baseline' differs in convergence \(the stopping rule\)"):
        parse_params(twin)
    capped = copy.deepcopy(tiny)
    capped["twins"]["baseline"]["epochs"] += 1
    with pytest.raises(ParamsError, match=r"'baseline' differs in epochs \(the cap\)"):
        parse_params(capped)
    teacher = copy.deepcopy(tiny)  # the member student's twin is teacher t1: the teachers' rule
    teacher["teachers"]["convergence"]["patience"] += 1
    with pytest.raises(ParamsError, match=r"'t1' differs in convergence"):
        parse_params(teacher)
    both = copy.deepcopy(tiny)  # one rule for a student and its twin, set where both read it
    both["student_defaults"]["convergence"] = {"patience": 9, "min_improvement": 0.0}
    both["teachers"]["convergence"] = {"patience": 9, "min_improvement": 0.0}
    assert parse_params(both).convergence("baseline").patience == 9


def test_the_member_student_takes_the_teacher_forked_like_it_as_twin(tiny):
    params = parse_params(copy.deepcopy(tiny))
    assert params.twin_model("member") == "teacher.t1"
    assert params.students["member"].fork == params.teachers.others["t1"].fork
    assert params.students["member"].fork.init == "guide"
    assert params.student_model("member") == params.teachers.guide.model
    assert params.student_model("distilled") == params.student_defaults.model
    assert params.distilled_students() == ["distilled", "member"]
    assert params.student_names() == ["baseline", "distilled", "member"]
    unforked = copy.deepcopy(tiny)
    unforked["students"]["member"]["fork"] = None
    with pytest.raises(ParamsError, match=r"'t1' differs in fork \(the warm start\)"):
        parse_params(unforked)
    other_cycle = copy.deepcopy(tiny)
    other_cycle["students"]["member"]["fork"] = {"init": "guide", "lr": 0.123}
    with pytest.raises(ParamsError, match=r"'t1' differs in fork"):
        parse_params(other_cycle)
    tiny["students"]["member"]["model"]["d_model"] = 32
    with pytest.raises(ParamsError, match=r"'t1' differs in model"):
        parse_params(tiny)


def test_forks_start_from_the_guide_only(tiny):
    guide = copy.deepcopy(tiny)
    guide["teachers"]["guide"]["fork"] = {"init": "guide", "lr": 0.001}
    with pytest.raises(ParamsError, match=r"teachers.guide.fork: the guide trains from a random init"):
        parse_params(guide)
    wider = copy.deepcopy(tiny)
    wider["teachers"]["others"]["t1"]["model"]["d_model"] = 128
    with pytest.raises(ParamsError, match=r"teachers.others.t1.fork: it starts from the guide's weights"):
        parse_params(wider)
    dropout = copy.deepcopy(tiny)  # dropout is no weight: a fork may set its own
    dropout["teachers"]["others"]["t1"]["model"]["dropout"] = 0.2
    dropout["students"]["member"]["model"]["dropout"] = 0.2
    assert parse_params(dropout).teachers.others["t1"].model.dropout == 0.2
    twin = copy.deepcopy(tiny)
    twin["twins"]["baseline"]["fork"] = {"init": "guide", "lr": 0.001}
    with pytest.raises(ParamsError, match=r"fork is for distilled students and teachers"):
        parse_params(twin)
    unknown = copy.deepcopy(tiny)
    unknown["teachers"]["others"]["t1"]["fork"] = {"init": "t2", "lr": 0.001}
    with pytest.raises(ParamsError, match=r"teachers.others.t1.fork.init"):
        parse_params(unknown)


def test_student_names_do_not_clash_with_teachers(tiny):
    twin = copy.deepcopy(tiny)
    twin["twins"]["t1"] = {"epochs": 2, "seed": 0}
    with pytest.raises(ParamsError, match=r"twins: t1 is also a teacher's name"):
        parse_params(twin)
    tiny["students"]["guide"] = {**tiny["students"]["distilled"]}
    with pytest.raises(ParamsError, match=r"students: guide is also a teacher's name"):
        parse_params(tiny)


def test_a_missing_section_or_key_is_named_in_one_line():
    raw = read_params(DEFAULT_PARAMS)
    del raw["export"]
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert str(err.value) == "params.yaml: missing section 'export'"
    raw = read_params(DEFAULT_PARAMS)
    del raw["students"]["distilled"]["epochs"]
    del raw["train"]["lr"]
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert str(err.value).splitlines() == [
        "params.yaml: invalid parameters",
        "  missing key 'train.lr'",
        "  missing key 'students.distilled.epochs'",
    ]


def test_the_code_has_no_defaults_of_its_own():
    """Every key but a student's is required: params.yaml is the one place that sets them.

    The one exception: a model block's streaming keys, left out by every full-context model
    (and by every model file saved without them), 0 meaning full context."""
    from pipeline.config import ModelConfig, Params, Strict, StudentConfig, StudentDefaults, TwinConfig

    optional = {(ModelConfig, "chunk_frames"), (ModelConfig, "left_frames")}

    def required(model) -> None:
        for name, field in model.model_fields.items():
            if model in (StudentConfig, TwinConfig) and name in StudentDefaults.model_fields:
                continue  # from student_defaults
            if (model, name) in optional:
                assert field.default == 0
                continue
            assert field.is_required(), f"{model.__name__}.{name} has a default"
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(arg, type) and issubclass(arg, Strict):
                    required(arg)

    required(Params)


def test_students_take_what_they_leave_out_from_student_defaults():
    params = default_params({"student_defaults.kd_frames": "nonblank", "twins.baseline.kd_frames": "all"})
    assert params.students["distilled"].kd_frames == "nonblank"
    assert params.twins["baseline"].kd_frames == "all"
    assert params.twins["baseline"].model == params.student_defaults.model
    assert params.student("baseline").alpha == 0.0
    assert params.students["distilled"].model == params.student_defaults.model
    assert params.students["member"].model != params.student_defaults.model  # its own
    raw = read_params(DEFAULT_PARAMS)
    del raw["student_defaults"]
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert str(err.value) == "params.yaml: missing section 'student_defaults'"


def test_the_old_student_block_says_where_it_moved(tiny):
    tiny["student"] = tiny["student_defaults"]["model"]
    with pytest.raises(ParamsError, match=r"unknown key 'student'; it moved to student_defaults\.model"):
        parse_params(tiny)


def test_keys_of_an_older_params_yaml_say_where_they_moved(tiny):
    old = copy.deepcopy(tiny)
    old["distill"] = old.pop("soft_targets")
    old["guide"] = old["teachers"]["guide"]
    old["teachers"] = old["teachers"]["others"]
    with pytest.raises(ParamsError) as err:
        parse_params(old)
    msg = str(err.value)
    assert "unknown key 'distill'; it moved to soft_targets" in msg
    assert "unknown key 'guide'; it moved to teachers.guide" in msg
    assert "unknown key 'teachers.t1'; it moved to teachers.others.t1" in msg


def test_a_missing_or_broken_params_file_is_one_line(tmp_path):
    from pipeline.errors import InputError

    with pytest.raises(InputError, match="nowhere.yaml: parameters file not found"):
        load_params(tmp_path / "nowhere.yaml")
    (tmp_path / "bad.yaml").write_text("data: [\n")
    with pytest.raises(ParamsError, match="bad.yaml: not valid YAML"):
        load_params(tmp_path / "bad.yaml")
