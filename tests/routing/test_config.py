import textwrap

import pytest

from routing.config import load_config, parse_config
from routing.errors import ConfigError

VALID = """
deployments:
  - id: openai-main
    provider: openai
    model: gpt-4o-mini
    base_url: http://127.0.0.1:9101/v1
    input_cost_per_mtok: 0.15
    output_cost_per_mtok: 0.60
    context_window: 128000
    rpm: 500
  - id: groq-backup
    provider: groq
    model: llama-3.1-8b-instant
    api_key_env: GROQ_KEY_2
policies:
  default:
    strategy: ordered
    targets: [openai-main, groq-backup]
"""


def write(tmp_path, text):
    path = tmp_path / "turnout.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_contract_example_loads(tmp_path):
    config = load_config(write(tmp_path, VALID))
    main = config.deployment("openai-main")
    assert main.key_env == "OPENAI_API_KEY"
    assert config.deployment("groq-backup").key_env == "GROQ_KEY_2"
    assert config.policies["default"].targets == ["openai-main", "groq-backup"]
    assert main.cost_usd(1_000_000, 1_000_000) == pytest.approx(0.75)


def problems(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert str(tmp_path / "turnout.yaml") in message, "the error names the file"
    return message


def test_unknown_key_names_its_path_and_a_fix(tmp_path):
    message = problems(tmp_path, VALID.replace("    rpm: 500", "    rmp: 500"))
    assert "deployments[0].rmp: unknown key 'rmp'" in message
    assert "did you mean 'rpm'?" in message


@pytest.mark.parametrize(
    ("extra", "where", "key"),
    [
        ("aliases:\n  1: [openai-main]\n  b: [openai-main]\n", "aliases", "1 "),
        ("aliases:\n  null: [openai-main]\n", "aliases", "None "),
        ("aliases:\n  true: [openai-main]\n", "aliases", "True "),
        ("aliases:\n  1.5: [openai-main]\n", "aliases", "1.5 "),
        ("  5:\n    targets: [openai-main]\n", "policies", "5 "),
        ("5: x\n", "(top level)", "5 "),
        ("    null: 1\n", "policies.default", "None "),
    ],
)
def test_a_key_that_is_not_a_string_names_its_mapping(tmp_path, extra, where, key):
    message = problems(tmp_path, VALID + extra)
    assert f"{where}: the key {key}is not a string" in message
    assert "quote the name" in message


@pytest.mark.parametrize(
    "aliases", ["{1: [openai-main], b: [openai-main]}", "{null: [openai-main]}"]
)
def test_mixed_alias_keys_beside_an_unknown_target_are_reported_not_a_crash(tmp_path, aliases):
    text = VALID.replace("[openai-main, groq-backup]", "[openai-main, nope]")
    message = problems(tmp_path, text + f"aliases: {aliases}\n")
    assert "aliases: the key" in message
    assert "policies.default.targets[1]: unknown deployment or alias 'nope'" in message


def test_a_complex_yaml_key_is_a_config_error(tmp_path):
    message = problems(tmp_path, VALID + "aliases:\n  ? [1, 2]\n  : [openai-main]\n")
    assert "unhashable key" in message


def test_a_deployment_id_that_is_a_number_is_named(tmp_path):
    message = problems(tmp_path, VALID.replace("id: groq-backup", "id: 5"))
    assert "deployments[1].id: Input should be a valid string (got 5)" in message


def test_failback_on_a_policy_points_to_the_breaker(tmp_path):
    message = problems(tmp_path, VALID + "    failback: manual\n")
    assert "policies.default.failback: 'failback' is a breaker setting" in message
    assert "move it to breaker:" in message


def test_health_and_failback_settings_load_with_per_deployment_overrides(tmp_path):
    text = VALID.replace(
        "    rpm: 500\n",
        "    rpm: 500\n    health: {probe: completion}\n    breaker: {failback: manual}\n",
    )
    config = load_config(
        write(tmp_path, text + "health: {every_s: 5}\nbreaker: {close_after: 3}\n")
    )
    main, backup = config.deployment("openai-main"), config.deployment("groq-backup")
    assert (config.health_for(main).probe, config.health_for(main).every_s) == ("completion", 5)
    assert config.health_for(backup).probe == "credential"
    assert (config.breaker_for(main).failback, config.breaker_for(main).close_after) == (
        "manual",
        3,
    )
    assert config.breaker_for(backup).failback == "auto"


def test_unknown_provider_suggests_the_closest(tmp_path):
    message = problems(tmp_path, VALID.replace("provider: openai", "provider: opneai"))
    assert "deployments[0].provider: unknown provider 'opneai'" in message
    assert "did you mean 'openai'?" in message


def test_duplicate_ids_are_refused(tmp_path):
    message = problems(tmp_path, VALID.replace("id: groq-backup", "id: openai-main"))
    assert "deployments[1].id: duplicate id 'openai-main' (also deployments[0])" in message


def test_a_policy_naming_an_unknown_deployment(tmp_path):
    message = problems(
        tmp_path, VALID.replace("[openai-main, groq-backup]", "[openai-main, groq-bakup]")
    )
    assert "policies.default.targets[1]: unknown deployment or alias 'groq-bakup'" in message
    assert "did you mean 'groq-backup'?" in message


def test_every_problem_is_reported_at_once(tmp_path):
    broken = VALID.replace("provider: openai", "provider: nope").replace("rpm: 500", "rpm: -1")
    message = problems(tmp_path, broken)
    assert "2 problems" in message
    assert "deployments[0].rpm" in message
    assert "deployments[0].provider" in message


def test_yaml_syntax_errors_name_the_line(tmp_path):
    message = problems(tmp_path, "deployments:\n  - id: [unclosed\n")
    assert "not valid YAML at line" in message


def test_a_missing_file_says_which_variable_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="TURNOUT_CONFIG"):
        load_config(tmp_path / "absent.yaml")


def test_a_deployment_whose_key_variable_is_unset(config):
    with pytest.raises(ConfigError) as caught:
        config.check_credentials(lambda env: env == "GROQ_API_KEY")
    message = str(caught.value)
    assert (
        "deployments[0] (openai-main): openai needs an API key, and OPENAI_API_KEY is not set"
        in (message)
    )
    assert "export OPENAI_API_KEY=" in message
    assert "groq" not in message, "a set variable is not a problem"
    assert "local" not in message, "ollama needs no key"


def test_the_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config(["deployments"], source="x.yaml")


def test_breaker_overrides_extend_the_global_settings(tmp_path):
    text = (
        VALID.replace("    rpm: 500", "    rpm: 500\n    breaker:\n      consecutive_failures: 2")
        + "breaker:\n  cooldown_s: 10\n  cooldown_max_s: 60\n"
    )
    config = load_config(write(tmp_path, text))
    main = config.breaker_for(config.deployment("openai-main"))
    backup = config.breaker_for(config.deployment("groq-backup"))
    assert (main.consecutive_failures, main.cooldown_s, main.cooldown_max_s) == (2, 10, 60)
    assert (backup.consecutive_failures, backup.cooldown_s) == (5, 10)


def test_an_override_that_contradicts_the_global_breaker_is_refused(tmp_path):
    text = VALID.replace("    rpm: 500", "    rpm: 500\n    breaker:\n      cooldown_s: 400")
    message = problems(tmp_path, text)
    assert "deployments[0].breaker: cooldown_max_s (300) is below cooldown_s (400)" in message


PASTED = "sk-proj-Zq81vXk2Lr7WmN4tYb0cHd5sJf3uGe6aPo9i"


def test_a_key_pasted_as_api_key_env_is_one_problem_in_plain_words(tmp_path):
    message = problems(tmp_path, VALID.replace("api_key_env: GROQ_KEY_2", f"api_key_env: {PASTED}"))
    lines = [line.strip() for line in message.splitlines() if "api_key_env" in line]
    assert lines == [
        "deployments[1].api_key_env: must be the NAME of an environment variable (letters, "
        f"digits, _), not a key; got a string of {len(PASTED)} characters starting 'sk-'"
    ]
    assert "constrained" not in message
    assert PASTED[:4] not in message


def test_a_key_pasted_into_a_key_pool_names_its_entry(tmp_path):
    pool = f"api_key_env: [GROQ_KEY_2, {PASTED}]"
    message = problems(tmp_path, VALID.replace("api_key_env: GROQ_KEY_2", pool))
    assert "deployments[1].api_key_env[1]: must be the NAME of an environment variable" in message
    assert "list[" not in message
    assert message.count("api_key_env") == 1
    assert PASTED[:4] not in message


def test_a_pattern_a_value_misses_is_said_in_words_not_as_a_regex(tmp_path):
    message = problems(tmp_path, VALID.replace("http://127.0.0.1", "ftp://127.0.0.1"))
    assert "deployments[0].base_url: must be a URL starting http:// or https://" in message
    assert "should match pattern" not in message
