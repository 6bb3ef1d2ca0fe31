"""Config loading: the spec's TOML, ``${VAR}`` expansion, precise errors, environment-only configs, and the CLI's
handling of a bad config (exit code 2, one clear line on stderr, no traceback).

Everything here is pure and fast except the CLI tests, which run ``python -m fastgw.cli`` in a subprocess that
exits before it would ever bind a port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fastgw import config as config_module
from fastgw.config import Config, ConfigError, Provider, Route

SPEC_TOML = """\
listen = "127.0.0.1:8080"

[providers.openai]
dialect = "openai-chat"             # "anthropic" | "openai-chat" | "openai-responses"
base_url = "http://127.0.0.1:9100/v1"
keys = ["${OPENAI_API_KEY}"]

[providers.anthropic]
dialect = "anthropic"
base_url = "http://127.0.0.1:9100"
keys = ["${ANTHROPIC_API_KEY}"]

[[routes]]
match = "claude-*"
to = "openai:gpt-5"
"""

SPEC_ENV = {"OPENAI_API_KEY": "sk-openai-123", "ANTHROPIC_API_KEY": "sk-ant-456"}

# A small valid config to mutate into invalid ones.
MINIMAL_TOML = """\
[providers.openai]
dialect = "openai-chat"
base_url = "http://127.0.0.1:9100/v1"
keys = ["k"]

[[routes]]
match = "claude-*"
to = "openai:gpt-5"
"""


def write(tmp_path: Path, text: str, name: str = "fastgw.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        config_module.load(str(path), env={} if env is None else env)
    return str(caught.value)


def mapping_error(data: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        config_module.from_mapping(data, "test.toml", env={} if env is None else env)
    return str(caught.value)


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "providers": {"openai": {"dialect": "openai-chat", "base_url": "http://127.0.0.1:9100/v1", "keys": ["k"]}},
        "routes": [{"match": "claude-*", "to": "openai:gpt-5"}],
    }
    data.update(changes)
    return data


# --- the spec's file ------------------------------------------------------------------------------------------------


def test_spec_toml_loads_exactly(tmp_path: Path) -> None:
    config = config_module.load(str(write(tmp_path, SPEC_TOML)), env=SPEC_ENV)
    assert config.listen == "127.0.0.1:8080"
    assert config.providers == {
        "openai": Provider(dialect="openai-chat", base_url="http://127.0.0.1:9100/v1", keys=["sk-openai-123"]),
        "anthropic": Provider(dialect="anthropic", base_url="http://127.0.0.1:9100", keys=["sk-ant-456"]),
    }
    assert config.routes == [Route(match="claude-*", to="openai:gpt-5")]
    # Everything not in the file keeps its default.
    defaults = Config()
    assert config.graceful_timeout == defaults.graceful_timeout == 30.0
    assert config.timeouts == defaults.timeouts
    assert config.max_body_bytes == defaults.max_body_bytes
    assert config.tiers == defaults.tiers


def test_spec_toml_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-os-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-os-anthropic")
    config = config_module.load(str(write(tmp_path, SPEC_TOML)))
    assert config.providers["openai"].keys == ["from-os-openai"]
    assert config.providers["anthropic"].keys == ["from-os-anthropic"]


def test_env_parameter_is_the_only_source_when_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-os")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-os")
    config = config_module.load(str(write(tmp_path, SPEC_TOML)), env=SPEC_ENV)
    assert config.providers["openai"].keys == ["sk-openai-123"]


def test_spec_toml_other_dialects_accepted(tmp_path: Path) -> None:
    text = SPEC_TOML.replace('dialect = "openai-chat"', 'dialect = "openai-responses"')
    config = config_module.load(str(write(tmp_path, text)), env=SPEC_ENV)
    assert config.providers["openai"].dialect == "openai-responses"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = config_module.load(str(write(tmp_path, SPEC_TOML)), env=SPEC_ENV)
    with pytest.raises(AttributeError):
        config.listen = "0.0.0.0:1"  # type: ignore[misc]


# --- ${VAR} expansion -----------------------------------------------------------------------------------------------


def test_var_expands_inside_strings_everywhere() -> None:
    data = minimal(listen="${HOST}:${PORT}")
    data["providers"]["openai"]["base_url"] = "http://${HOST}:9100/v1"
    data["providers"]["openai"]["headers"] = {"authorization": "Bearer ${TOKEN}", "x-literal": "$HOME and $ and {}"}
    data["providers"]["openai"]["keys"] = ["${A}", "pre-${B}-post"]
    config = config_module.from_mapping(
        data, "test.toml", env={"HOST": "10.0.0.1", "PORT": "9000", "TOKEN": "t0k", "A": "a", "B": "b"}
    )
    provider = config.providers["openai"]
    assert config.listen == "10.0.0.1:9000"
    assert provider.base_url == "http://10.0.0.1:9100/v1"
    assert provider.keys == ["a", "pre-b-post"]
    assert provider.headers == {"authorization": "Bearer t0k", "x-literal": "$HOME and $ and {}"}


def test_var_expanded_value_is_not_expanded_again() -> None:
    data = minimal()
    data["providers"]["openai"]["keys"] = ["${A}"]
    config = config_module.from_mapping(data, "test.toml", env={"A": "${B}"})
    assert config.providers["openai"].keys == ["${B}"]


def test_var_set_to_empty_string_expands_to_empty() -> None:
    data = minimal()
    data["providers"]["openai"]["keys"] = ["${EMPTY}"]
    config = config_module.from_mapping(data, "test.toml", env={"EMPTY": ""})
    assert config.providers["openai"].keys == [""]


def test_missing_var_names_var_key_path_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_TOML)
    message = load_error(path, env={"ANTHROPIC_API_KEY": "x"})
    assert "OPENAI_API_KEY" in message
    assert "providers.openai.keys[0]" in message
    assert str(path) in message
    assert "not set" in message


def test_missing_var_in_second_provider_names_its_path(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, SPEC_TOML), env={"OPENAI_API_KEY": "x"})
    assert "ANTHROPIC_API_KEY" in message
    assert "providers.anthropic.keys[0]" in message


def test_missing_var_in_route_and_nested_table() -> None:
    assert "routes[0].to" in mapping_error(minimal(routes=[{"match": "*", "to": "${TARGET}"}]))
    data = minimal()
    data["providers"]["openai"]["headers"] = {"x-org": "${ORG}"}
    message = mapping_error(data)
    assert "ORG" in message and "providers.openai.headers.x-org" in message


# --- validation errors ----------------------------------------------------------------------------------------------


def test_unknown_key_in_provider_names_table_and_key(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, MINIMAL_TOML.replace('keys = ["k"]', 'keys = ["k"]\nbogus = 1')))
    assert "bogus" in message
    assert "providers.openai" in message, f"the error should name the table the key is in: {message!r}"


def test_unknown_top_level_key_is_reported_once_and_readably(tmp_path: Path) -> None:
    path = write(tmp_path, "bogus = 1\n" + MINIMAL_TOML)
    message = load_error(path)
    assert "bogus" in message
    # One clear sentence: "<file>: top level: Object contains unknown field `bogus`", not the text twice.
    assert message.count("bogus") == 1, message
    assert message == f"{path}: top level: Object contains unknown field `bogus`"


def test_unknown_key_in_route_and_timeouts() -> None:
    message = mapping_error(minimal(routes=[{"match": "*", "to": "openai", "weight": 2}]))
    assert "routes[0]" in message and "weight" in message
    message = mapping_error(minimal(timeouts={"idel": 5}))
    assert "timeouts" in message and "idel" in message


def test_wrong_type_keys_string_instead_of_list(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, MINIMAL_TOML.replace('keys = ["k"]', 'keys = "x"')))
    assert "Expected `array`, got `str`" in message
    assert "providers.openai.keys" in message, f"the error should name the full key path: {message!r}"


@pytest.mark.parametrize(
    ("changes", "path", "expected"),
    [
        ({"listen": 8080}, "listen", "Expected `str`, got `int`"),
        ({"graceful_timeout": "soon"}, "graceful_timeout", "Expected `float`, got `str`"),
        ({"max_body_bytes": 1.5}, "max_body_bytes", "Expected `int`, got `float`"),
        ({"timeouts": {"idle": "x"}}, "timeouts.idle", "Expected `float`, got `str`"),
        ({"routes": {"match": "*"}}, "routes", "Expected `array`, got `object`"),
        ({"routes": [{"match": "*"}]}, "routes[0]", "missing required field `to`"),
    ],
)
def test_wrong_type_names_path_and_expectation(changes: dict[str, Any], path: str, expected: str) -> None:
    message = mapping_error(minimal(**changes))
    assert message.startswith(f"test.toml: {path}: "), message
    assert expected in message


def test_bad_dialect_value(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, MINIMAL_TOML.replace('"openai-chat"', '"gemini"')))
    assert "gemini" in message
    assert "dialect" in message


def test_bad_dialect_names_provider(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, MINIMAL_TOML.replace('"openai-chat"', '"gemini"')))
    assert "providers.openai.dialect" in message, message


def test_bad_dialect_says_what_was_expected(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, MINIMAL_TOML.replace('"openai-chat"', '"gemini"')))
    for dialect in ("anthropic", "openai-chat", "openai-responses"):
        assert dialect in message, f"the error should list the accepted dialects: {message!r}"


def test_missing_base_url(tmp_path: Path) -> None:
    text = MINIMAL_TOML.replace('base_url = "http://127.0.0.1:9100/v1"\n', "")
    message = load_error(write(tmp_path, text))
    assert "base_url" in message and "missing" in message


def test_dangling_provider_in_route(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_TOML.replace('to = "openai:gpt-5"', 'to = "nope:model"'))
    message = load_error(path)
    assert str(path) in message
    assert "routes[0].to" in message
    assert "'nope'" in message
    assert "openai" in message  # the providers that do exist


def test_dangling_provider_in_later_route_and_bare_provider_target() -> None:
    routes = [{"match": "claude-*", "to": "openai:gpt-5"}, {"match": "*", "to": "nope"}]
    message = mapping_error(minimal(routes=routes))
    assert "routes[1].to" in message and "'nope'" in message


def test_dangling_provider_in_tiers() -> None:
    message = mapping_error(minimal(tiers={"opus": "nope:big"}))
    assert "tiers.opus" in message and "'nope'" in message


def test_route_without_providers_says_none_defined() -> None:
    message = mapping_error({"routes": [{"match": "*", "to": "openai"}]})
    assert "routes[0].to" in message and "none defined" in message


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai\ndialect = "openai-chat"\n')
    message = load_error(path)
    assert str(path) in message
    assert "invalid TOML" in message
    assert "line 1" in message


def test_duplicate_table_is_invalid_toml(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, MINIMAL_TOML + '\n[providers.openai]\ndialect = "anthropic"\n'))
    assert "invalid TOML" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    message = load_error(path)
    assert str(path) in message
    assert "cannot read" in message
    assert "No such file" in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    message = load_error(tmp_path)
    assert str(tmp_path) in message and "cannot read" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_TOML)
    path.chmod(0)
    try:
        message = load_error(path)
    finally:
        path.chmod(0o600)
    assert str(path) in message and "cannot read" in message and "Permission denied" in message


def test_config_error_is_not_chained(tmp_path: Path) -> None:
    """``from None``: a CLI or log printing the error shows one message, not a msgspec/tomllib traceback chain."""
    for path in (write(tmp_path, "x = [", "bad.toml"), write(tmp_path, "bogus = 1\n", "unknown.toml")):
        with pytest.raises(ConfigError) as caught:
            config_module.load(str(path), env={})
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__


# --- from_env ------------------------------------------------------------------------------------------------------


def test_from_env_no_keys_no_providers() -> None:
    config = config_module.from_env({})
    assert config.providers == {}
    assert config.routes == []
    assert config.listen == "127.0.0.1:8080"


def test_from_env_empty_keys_count_as_unset() -> None:
    config = config_module.from_env({"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""})
    assert config.providers == {}


def test_from_env_openai_only_sends_claude_to_gpt5() -> None:
    config = config_module.from_env({"OPENAI_API_KEY": "sk-o"})
    assert config.providers == {
        "openai": Provider(dialect="openai-chat", base_url="https://api.openai.com/v1", keys=["sk-o"])
    }
    assert config.routes == [Route(match="claude-*", to="openai:gpt-5"), Route(match="*", to="openai")]


def test_from_env_default_model_respected() -> None:
    config = config_module.from_env({"OPENAI_API_KEY": "sk-o", "FASTGW_DEFAULT_MODEL": "gpt-5-mini"})
    assert config.routes[0] == Route(match="claude-*", to="openai:gpt-5-mini")


def test_from_env_anthropic_key_sends_claude_to_anthropic() -> None:
    env = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "FASTGW_DEFAULT_MODEL": "gpt-5-mini"}
    config = config_module.from_env(env)
    assert config.providers["anthropic"] == Provider(
        dialect="anthropic", base_url="https://api.anthropic.com", keys=["sk-a"]
    )
    assert config.routes == [Route(match="claude-*", to="anthropic"), Route(match="*", to="openai")]


def test_from_env_anthropic_only() -> None:
    config = config_module.from_env({"ANTHROPIC_API_KEY": "sk-a"})
    assert list(config.providers) == ["anthropic"]
    assert config.routes == [Route(match="claude-*", to="anthropic")]


def test_from_env_base_urls_and_listen() -> None:
    env = {
        "OPENAI_API_KEY": "sk-o",
        "OPENAI_BASE_URL": "http://127.0.0.1:9100/v1",
        "ANTHROPIC_API_KEY": "sk-a",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9100",
        "FASTGW_LISTEN": "0.0.0.0:9000",
    }
    config = config_module.from_env(env)
    assert config.providers["openai"].base_url == "http://127.0.0.1:9100/v1"
    assert config.providers["anthropic"].base_url == "http://127.0.0.1:9100"
    assert config.listen == "0.0.0.0:9000"


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "FASTGW_DEFAULT_MODEL", "OPENAI_BASE_URL", "FASTGW_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-os")
    config = config_module.from_env()
    assert config.providers["openai"].keys == ["sk-os"]
    assert config.routes[0] == Route(match="claude-*", to="openai:gpt-5")


def test_from_env_key_containing_dollar_brace_is_taken_literally() -> None:
    """A key is a value, not a template: from_env must not try to expand ``${...}`` inside it."""
    config = config_module.from_env({"OPENAI_API_KEY": "sk-${NOT_A_VAR}"})
    assert config.providers["openai"].keys == ["sk-${NOT_A_VAR}"]


# --- the CLI with a bad config --------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "FASTGW_"))}
    return subprocess.run(
        [sys.executable, "-m", "fastgw.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_clean_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("fastgw: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_cli_bad_config_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_TOML.replace('to = "openai:gpt-5"', 'to = "nope:model"'), "bad.toml")
    result = run_cli("serve", "--config", str(path), "--port", "1")
    assert_clean_exit_2(result, "config error", str(path), "routes[0].to", "'nope'")


def test_cli_invalid_toml_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "listen = \n", "bad.toml")
    assert_clean_exit_2(run_cli("serve", "--config", str(path)), "invalid TOML", str(path))


def test_cli_missing_config_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert_clean_exit_2(run_cli("serve", "--config", str(path)), "cannot read", str(path))


def test_cli_missing_env_var_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_TOML, "spec.toml")
    result = run_cli("serve", "--config", str(path), env={"ANTHROPIC_API_KEY": "x"})
    assert_clean_exit_2(result, "OPENAI_API_KEY", "providers.openai.keys[0]")


def test_cli_no_providers_exits_2() -> None:
    result = run_cli("serve")
    assert_clean_exit_2(result, "no providers", "--fake")


def test_cli_usage_error_exits_2() -> None:
    result = run_cli("serve", "--workers", "many")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--workers" in result.stderr


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ({"keys": ["sk-ok\r\nx-injected: 1"]}, "providers.p.keys[0]"),
        ({"headers": {"x-team": "a\nb"}}, "providers.p.headers.x-team"),
        ({"headers": {"bad name": "v"}}, "providers.p.headers.bad name"),
    ],
)
def test_values_that_would_inject_headers_are_rejected(provider: dict[str, object], path: str) -> None:
    """Keys and extra headers go into upstream request heads verbatim, so CR/LF and bad names are refused."""
    data = {"providers": {"p": {"dialect": "openai-chat", "base_url": "http://x/v1", **provider}}}
    with pytest.raises(config_module.ConfigError, match=re.escape(path)):
        config_module.from_mapping(data, "t.toml", env={})


def test_route_effort_overrides_are_checked_against_the_ladder() -> None:
    data = {
        "providers": {"p": {"dialect": "openai-responses", "base_url": "http://x/v1"}},
        "routes": [{"match": "*", "to": "p:gpt-5.5-codex", "efforts": {"max": "xhigh", "turbo": "high"}}],
    }
    with pytest.raises(config_module.ConfigError, match=r"routes\[0\]\.efforts\.turbo: unknown effort"):
        config_module.from_mapping(data, "t.toml", env={})
    data["routes"][0]["efforts"] = {"max": "xhigh"}  # type: ignore[index]
    assert config_module.from_mapping(data, "t.toml", env={}).routes[0].efforts == {"max": "xhigh"}


def test_the_listen_backlog_must_be_positive() -> None:
    assert config_module.from_mapping({}, "test").backlog == 2048
    with pytest.raises(ConfigError, match="backlog: must be greater than 0"):
        config_module.from_mapping({"backlog": 0}, "test")
