"""Config files, precedence (defaults < recipe < file < CLI flags), --print-config and config errors."""
import pytest
import yaml

from tudui.cli import main
from tudui.config import TrainConfig, resolve, resolve_resume
from tudui.errors import ConfigError


def write(tmp_path, text, name="run.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_precedence_defaults_recipe_file_overrides(tmp_path):
    f = write(tmp_path, "recipe: course\nepochs: 3\nlr: 0.2\nmodel_args: {dropout: 0.1}\n")
    cfg = resolve({"lr": "0.3"}, config_file=f)
    assert cfg.lr == 0.3  # CLI flag beats the file (and arrives as a string, typed here)
    assert cfg.epochs == 3  # file beats the recipe's 10
    assert cfg.momentum == 0.0 and cfg.scheduler == "none"  # recipe beats the defaults
    assert cfg.model_args == {"activation": "none", "dropout": 0.1}  # file's model_args merge into the recipe's
    assert cfg.weight_decay == 0.0 and cfg.batch_size == 64
    assert resolve().weight_decay == TrainConfig().weight_decay == 5e-4


def test_print_config_is_the_typed_resolved_yaml(tmp_path, capsys):
    f = write(tmp_path, "epochs: 4\nbatch_size: 32\nnesterov: true\nmean: [0.5]\n")
    assert main(["train", "--config", f, "--lr", "0.5", "--model-arg", "hidden=32", "--print-config"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert set(out) == set(TrainConfig().to_dict())  # every key, nothing else
    assert out["epochs"] == 4 and out["batch_size"] == 32 and out["lr"] == 0.5 and out["nesterov"] is True
    assert out["mean"] == [0.5] and out["model_args"] == {"hidden": 32}
    assert main(["train", "--recipe", "course", "--print-config"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["recipe"] == "course" and out["lr"] == 0.01 and out["scheduler"] == "none"


@pytest.mark.parametrize("text, key", [
    ("epochz: 3\n", "epochz"),  # unknown key
    ("epochs: ten\n", "epochs"),  # wrong type
    ("epochs: 2.5\n", "epochs"),
    ("lr: [1, 2]\n", "lr"),
    ("nesterov: maybe\n", "nesterov"),
    ("optimizer: rmsprop\n", "optimizer"),  # not one of the choices
    ("model_args: 3\n", "model_args"),
])
def test_config_file_errors_exit_2_naming_the_key(tmp_path, capsys, text, key):
    f = write(tmp_path, text)
    assert main(["train", "--config", f, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err and err.count("\n") == 1  # one line


def test_cli_flag_type_error_and_missing_file(tmp_path, capsys):
    assert main(["train", "--epochs", "abc", "--print-config"]) == 2
    assert "'epochs'" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "nope.yaml"), "--print-config"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", "--config", write(tmp_path, "- a\n- b\n"), "--print-config"]) == 2
    assert "mapping" in capsys.readouterr().err


def test_resume_config_allows_only_harmless_changes():
    saved = resolve({"epochs": 2, "batch_size": 32, "name": "r"}).to_dict()
    cfg = resolve_resume(saved, {"epochs": "5", "device": "cpu", "batch_size": 32})
    assert cfg.epochs == 5 and cfg.batch_size == 32 and cfg.name == "r"
    with pytest.raises(ConfigError, match="'batch_size' cannot change"):
        resolve_resume(saved, {"batch_size": 64})
    with pytest.raises(ConfigError, match="'lr'"):
        resolve_resume(saved, {"lr": 1.0})
