"""Every malformed config file gets a ConfigError, fast and in bounded memory, never a hang or
a traceback: the cases an attack run used against every command that loads the config."""

import resource
import time

import pytest

from routing.config import load_config
from routing.config_file import MAX_DEPTH
from routing.errors import ConfigError

BASE = """deployments:
  - id: a
    provider: ollama
    model: m
"""


def yaml_bomb(levels: int = 9) -> str:
    """The billion laughs: each level repeats the one below nine times, by alias."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        below = f"*l{level - 1}"
        lines.append(f"l{level}: &l{level} [{', '.join([below] * 9)}]")
    return "\n".join(lines) + "\n"


def refused(tmp_path, text: str | bytes) -> str:
    path = tmp_path / "turnout.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert time.monotonic() - started < 1.0, "refused within a second"
    message = str(caught.value)
    assert len(message) < 2000, "the error shows at most a short part of what it refuses"
    return message


@pytest.mark.parametrize(
    "where",
    [
        "  - id: b\n    provider: ollama\n    model: m\n    input_cost_per_mtok: *l8\n",
        "policies:\n  p:\n    targets: *l8\n",
    ],
    ids=["in a typed field", "in a list field"],
)
def test_a_yaml_bomb_is_refused_without_being_expanded(tmp_path, where):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    text = yaml_bomb() + BASE + where
    message = refused(tmp_path, text)
    assert "expands to more than" in message
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"peak memory grew {grown_mb:.0f} MB"


def test_deep_nesting_is_refused(tmp_path):
    assert "nest" in refused(tmp_path, BASE + "policies: " + "[" * 5000 + "]" * 5000 + "\n")
    deep_but_parsable = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    assert f"more than {MAX_DEPTH} levels" in refused(tmp_path, BASE + f"x: {deep_but_parsable}\n")


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    message = refused(tmp_path, BASE.encode() + b"# caf\xe9\n")
    assert "not UTF-8" in message
    assert "0xe9" in message


def test_a_huge_integer_is_refused(tmp_path):
    message = refused(tmp_path, BASE.replace("model: m", "model: m\n    rpm: " + "9" * 5000))
    assert "digits" in message
    assert "9" * 200 not in message


def test_duplicate_keys_are_refused_naming_both_lines(tmp_path):
    text = BASE + "deployments:\n  - id: b\n    provider: ollama\n    model: m\n"
    message = refused(tmp_path, text)
    assert "duplicate key deployments (first at line 1)" in message
    assert "line 5" in message
    nested = BASE.replace("model: m", "model: m\n    rpm: 5\n    rpm: 6")
    assert "duplicate key rpm" in refused(tmp_path, nested)


@pytest.mark.parametrize(
    "text",
    [
        BASE.replace("model: m", "model: m\n    input_cost_per_mtok: .inf"),
        BASE.replace("model: m", "model: m\n    output_cost_per_mtok: .nan"),
        BASE + "breaker:\n  cooldown_s: .inf\n",
        BASE + "breaker:\n  cooldown_max_s: .inf\n",
        BASE + "policies:\n  p:\n    targets: [a]\n    deadline_s: .inf\n",
        BASE + "policies:\n  p:\n    targets: [a]\n    max_cost_usd: .nan\n",
    ],
    ids=[
        "inf price",
        "nan price",
        "inf cool-down",
        "inf cool-down cap",
        "inf deadline",
        "nan cost",
    ],
)
def test_infinities_and_nans_are_refused_wherever_a_number_is_expected(tmp_path, text):
    assert "finite number" in refused(tmp_path, text)


def test_a_huge_wrong_value_is_shown_short(tmp_path):
    text = BASE.replace("model: m", "model: m\n    rpm: [" + ", ".join(["x" * 50] * 2000) + "]")
    message = refused(tmp_path, text)
    assert "..." in message


def test_anchors_and_aliases_of_an_ordinary_size_still_load(tmp_path):
    path = tmp_path / "turnout.yaml"
    path.write_text(
        "deployments:\n"
        "  - &first {id: a, provider: ollama, model: m, rpm: 60}\n"
        "  - {<<: *first, id: b}\n"
    )
    config = load_config(path)
    assert config.deployments["b"].rpm == 60


def test_a_key_pasted_where_its_variable_belongs_is_not_echoed(tmp_path):
    pasted = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyz"
    text = BASE.replace("model: m", f"model: m\n    api_key_env: {pasted}")
    message = refused(tmp_path, text)
    assert "api_key_env" in message
    assert pasted[:8] not in message, message
    assert f"a string of {len(pasted)} characters" in message


def test_a_huge_flat_file_is_refused_before_it_is_built(tmp_path):
    flat = "policies:\n  p:\n    targets: [" + ", ".join(["a"] * 120_000) + "]\n"
    assert "more than 100,000 values" in refused(tmp_path, BASE + flat)


def test_a_file_over_a_megabyte_is_refused_unread(tmp_path):
    message = refused(tmp_path, BASE + "# " + "x" * (1024 * 1024) + "\n")
    assert "larger than 1024 KiB" in message


def test_a_key_nested_in_a_wrong_value_is_shown_by_its_shape(tmp_path):
    pasted = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"
    message = refused(tmp_path, BASE.replace("model: m", f"model: {{key: {pasted}}}"))
    assert pasted[:10] not in message, message
    assert f"a string of {len(pasted)} characters" in message


def test_a_key_pasted_as_a_provider_or_a_target_is_not_echoed(tmp_path):
    pasted = "sk-ant-" + "api03-abcdefghijklmnopqrstuvwxyz0123456789"  # an obvious fake
    as_provider = BASE.replace("provider: ollama", f"provider: {pasted}")
    as_target = BASE + f"policies:\n  p:\n    targets: [{pasted}]\n"
    for text in (as_provider, as_target):
        message = refused(tmp_path, text)
        assert pasted[:12] not in message, message
