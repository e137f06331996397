from __future__ import annotations

import copy
import json
import logging
import pickle
from dataclasses import asdict

import pytest

from daytrading.config.loader import load_settings, settings_summary
from daytrading.config.secrets import MASK, Secret, Secrets, load_secrets, mask_secrets
from daytrading.config.settings import Settings
from daytrading.core.errors import ConfigError
from daytrading.runtime import log_setup as logs

DEEPSEEK = "sk-test0123456789abcdefXYZ"
POLYGON = "pg_Zq7Kx9mW2vL4nR8t"
WEBHOOK = "https://discord.com/api/webhooks/123456/tok3n-value-abc"


def test_secret_never_shows_its_value():
    secret = Secret("hunter2-very-secret")
    assert repr(secret) == "Secret('***')"
    assert str(secret) == MASK
    assert f"{secret}" == MASK
    assert f"{secret:>5}" == f"{MASK:>5}"
    assert "%s" % secret == MASK  # noqa: UP031 - the old style must be masked too
    assert "hunter2" not in repr([secret, {"k": secret}])
    assert secret.reveal() == "hunter2-very-secret"
    assert bool(secret) and not bool(Secret(""))
    assert secret == Secret("hunter2-very-secret") and secret != Secret("other-value")
    with pytest.raises(TypeError):
        json.dumps(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert copy.deepcopy(secret) is secret


def test_secret_wraps_only_text():
    with pytest.raises(TypeError):
        Secret(1234)  # type: ignore[arg-type]


def test_load_secrets_from_environment():
    secrets = load_secrets(
        {"DEEPSEEK_API_KEY": DEEPSEEK, "POLYGON_API_KEY": " " + POLYGON + " "},
        dotenv_path=None,
    )
    assert secrets.deepseek_api_key is not None
    assert secrets.deepseek_api_key.reveal() == DEEPSEEK
    assert secrets.polygon_api_key is not None
    assert secrets.polygon_api_key.reveal() == POLYGON  # surrounding blanks dropped
    assert secrets.alert_webhook_url is None


def test_environment_wins_over_dotenv_and_empty_counts_as_unset(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"DEEPSEEK_API_KEY=from-file-{DEEPSEEK}\nPOLYGON_API_KEY={POLYGON}\n"
        f'ALERT_WEBHOOK_URL="{WEBHOOK}"\n',
        encoding="utf-8",
    )
    secrets = load_secrets({"DEEPSEEK_API_KEY": DEEPSEEK, "POLYGON_API_KEY": ""}, dotenv)
    assert secrets.deepseek_api_key.reveal() == DEEPSEEK  # environment wins
    assert secrets.polygon_api_key.reveal() == POLYGON  # empty environment value: .env used
    assert secrets.alert_webhook_url.reveal() == WEBHOOK


def test_windows_style_lower_case_environment_names_are_found():
    secrets = load_secrets({"deepseek_api_key": DEEPSEEK}, None)
    assert secrets.deepseek_api_key.reveal() == DEEPSEEK


def test_explicit_missing_dotenv_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_secrets({}, tmp_path / "nope.env")


def test_bad_webhook_url_is_refused_without_showing_it():
    with pytest.raises(ConfigError) as info:
        load_secrets({"ALERT_WEBHOOK_URL": "notaurl-secretpart-999"}, None)
    assert "ALERT_WEBHOOK_URL" in str(info.value)
    assert "secretpart" not in str(info.value)


def test_secrets_repr_and_asdict_are_masked():
    secrets = load_secrets({"DEEPSEEK_API_KEY": DEEPSEEK, "ALERT_WEBHOOK_URL": WEBHOOK}, None)
    text = repr(secrets) + str(secrets) + repr(asdict(secrets))
    assert DEEPSEEK not in text and WEBHOOK not in text
    assert "deepseek_api_key=***" in repr(secrets)
    assert "polygon_api_key=<unset>" in repr(secrets)
    assert Secrets() == Secrets(None, None, None)


def test_mask_secrets_scrubs_known_values_and_credential_shapes():
    load_secrets({"POLYGON_API_KEY": POLYGON}, None)
    text = (
        f"GET https://api.polygon.io/v2/x?apiKey={POLYGON}&limit=5 failed; "
        "token=abcd1234efgh key sk-abcdefghijklmnopqrstu "
        "hook https://hooks.slack.com/services/T000/B000/XXXX"
    )
    masked = mask_secrets(text)
    assert POLYGON not in masked
    assert "abcd1234efgh" not in masked
    assert "sk-abcdefghijklmnopqrstu" not in masked
    assert "T000/B000/XXXX" not in masked
    assert "limit=5" in masked  # ordinary text survives
    assert mask_secrets("plain line, nothing to hide") == "plain line, nothing to hide"


@pytest.fixture
def clean_logging():
    root = logging.getLogger()
    level = root.level
    yield
    logs.remove_handlers()
    root.setLevel(level)


def test_a_secret_never_reaches_reprs_logs_or_config_errors(
    tmp_path, capsys, clean_logging, monkeypatch
):
    monkeypatch.setattr("daytrading.config.settings.PROJECT_ROOT", tmp_path)  # no real config.toml
    secrets = load_secrets(
        {"DEEPSEEK_API_KEY": DEEPSEEK, "POLYGON_API_KEY": POLYGON, "ALERT_WEBHOOK_URL": WEBHOOK},
        None,
    )
    values = (DEEPSEEK, POLYGON, WEBHOOK, "tok3n-value-abc")

    # 1. reprs and the settings summary
    settings = load_settings(None, env={"DAYTRADER__LOGGING__DIR": str(tmp_path / "logs")})
    shown = repr(settings) + repr(secrets) + json.dumps(settings_summary(settings))
    assert not any(v in shown for v in values)

    # 2. log output: message, %-args, extras, exception text; file and console
    log = logs.setup_logging("secret_test", settings)
    log.info("key is %s and raw %s", secrets.deepseek_api_key, POLYGON)
    log.warning("posting to %s", WEBHOOK, extra={"symbol": "AAPL", "url": WEBHOOK})
    try:
        raise RuntimeError(f"HTTP 401 for key {DEEPSEEK}")
    except RuntimeError:
        log.exception("request failed")
    logs.remove_handlers()
    written = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "logs").glob("*.jsonl"))
    console = capsys.readouterr().err
    assert "request failed" in written and "request failed" in console
    assert "AAPL" in written
    for value in values:
        assert value not in written
        assert value not in console

    # 3. configuration errors that would echo a value
    env = {
        "DAYTRADER__BROKER__PORT": POLYGON,  # wrong type: the value is shown, masked
        "DAYTRADER__LLM__API_KEY": DEEPSEEK,  # secret-looking key: refused, value not shown
        "DAYTRADER__LLM__BASE_URL": f"ftp://x/?apikey={DEEPSEEK}",
    }
    with pytest.raises(ConfigError) as info:
        load_settings(None, env=env)
    message = str(info.value)
    assert "broker.port" in message and "llm.api_key" in message and "llm.base_url" in message
    assert not any(v in message for v in values)
    assert Settings() == Settings()  # the defaults themselves hold no secret


def test_dotenv_saved_by_notepad_with_a_byte_order_mark(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(f"\ufeffPOLYGON_API_KEY={POLYGON}\r\n".encode())
    assert load_secrets({}, dotenv).polygon_api_key.reveal() == POLYGON
