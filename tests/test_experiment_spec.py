import pytest

from workbench.errors import DataError
from workbench.examples import example_path, load_example
from workbench.experiment import Experiment, experiment_from_dict, load_experiment
from workbench.variants import Variant


def test_demo_example_loads_and_expands():
    exp = load_example()
    assert exp.name == "sentiment-demo" and len(exp.load_cases()) == 24
    assert [v.name for v in exp.variants] == ["bare", "instructed", "json-schema"]
    assert exp.n_cells() == 72 == len(list(exp.cells()))


def test_yaml_round_trip_keeps_the_fingerprint(tmp_path):
    exp = Experiment(name="rt", dataset=[{"id": "1", "text": "a"}, {"id": "2", "text": "b"}],
                     variants=[Variant(name="v", system="S", user="{{ text }}", params={"temperature": 0},
                                       response_format="json")],
                     targets=["local", "azure:chat"], scorers=["exact"], repeats=2, seed=7)
    path = exp.save(tmp_path / "exp.yaml")
    again = load_experiment(path)
    assert again.fingerprint() == exp.fingerprint()
    assert again.to_dict() == exp.to_dict()
    assert [t.label for t in again.targets] == ["local", "azure:chat"]


def test_fingerprint_changes_with_the_prompt():
    a = Experiment(name="x", dataset=[{"t": 1}], variants=[Variant(name="v", user="{{ t }}")])
    b = Experiment(name="x", dataset=[{"t": 1}], variants=[Variant(name="v", user="Q: {{ t }}")])
    assert a.fingerprint() != b.fingerprint()


def test_validation_errors_name_the_file_and_field(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(
        "name: x\ndataset: {path: d.csv}\nvariants:\n  - name: v\n    user: '{{ t }}'\n"
        "    params: {temperature: hot}\nrepeats: 0\n"
    )
    with pytest.raises(DataError) as e:
        load_experiment(f)
    msg = str(e.value)
    assert str(f) in msg and "variants[0].params" in msg and "repeats" in msg


def test_yaml_syntax_error_has_a_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nvariants: [\n")
    with pytest.raises(DataError, match=r"not valid YAML at line \d+"):
        load_experiment(f)


def test_duplicate_variant_names_and_unknown_fields():
    with pytest.raises(DataError, match="variant names must be unique; repeated: v"):
        experiment_from_dict({"name": "x", "dataset": [{"a": 1}], "variants": [{"name": "v"}, {"name": "v"}]})
    with pytest.raises(DataError, match="variants\\[0\\].temprature"):
        experiment_from_dict({"name": "x", "dataset": [{"a": 1}], "variants": [{"name": "v", "temprature": 1}]})


def test_dataset_path_resolves_from_spec_folder():
    exp = load_experiment(example_path())
    assert exp.load_cases().source == "sentiment.csv" and exp.base_dir == example_path().parent
