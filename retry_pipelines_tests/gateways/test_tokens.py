"""Static tokens: read from a value, an environment variable or a file; reload picks up rotation."""

import pytest

from retry_pipelines.gateways.tokens import StaticToken, TokenUnavailable


def test_env_token_is_cached_until_reloaded(monkeypatch):
    monkeypatch.setenv("FBR_TEST_TOKEN", "first-token")
    token = StaticToken(env_var="FBR_TEST_TOKEN")
    assert token.get() == "first-token"
    monkeypatch.setenv("FBR_TEST_TOKEN", "rotated-token")
    assert token.get() == "first-token"
    assert token.reload() == "rotated-token"
    assert token.state.loaded_at is not None


def test_file_token_is_stripped_and_rotation_is_seen(tmp_path):
    path = tmp_path / "fbr.token"
    path.write_text("  file-token-1\n")
    token = StaticToken(file=path)
    assert token.get() == "file-token-1"
    path.write_text("file-token-2\n")
    assert token.reload() == "file-token-2"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"env_var": "FBR_TOKEN_THAT_IS_NOT_SET"}, r"no token in \$FBR_TOKEN_THAT_IS_NOT_SET"),
        ({"file": "/nonexistent/fbr.token"}, "cannot read token file /nonexistent/fbr.token"),
        ({"value": "   "}, "no token in configured value"),
    ],
)
def test_missing_tokens_give_a_clear_error(source, message, monkeypatch):
    monkeypatch.delenv("FBR_TOKEN_THAT_IS_NOT_SET", raising=False)
    with pytest.raises(TokenUnavailable, match=message):
        StaticToken(**source).get()


def test_a_token_needs_a_source():
    with pytest.raises(ValueError, match="needs a source"):
        StaticToken()
