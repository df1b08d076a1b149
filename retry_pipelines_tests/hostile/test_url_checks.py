"""Gateway and webhook URLs are checked exactly as the client will use them."""

import pytest

from retry_pipelines.domain.deployment import gateway_url_problems


@pytest.mark.parametrize(
    "url",
    [
        "https://alerts.example.com/hook\n",
        " https://alerts.example.com/hook",
        "https://alerts.example.com/ho ok",
        "https://alerts.example.com/hook\t",
        "https://alerts.example.com/\x00hook",
    ],
)
def test_a_url_with_whitespace_or_control_characters_is_refused(url):
    [problem] = gateway_url_problems("RETRY_PIPELINES_ALERT_WEBHOOK_URL", url, production=False)
    assert "whitespace or a control character" in problem
    assert "RETRY_PIPELINES_ALERT_WEBHOOK_URL" in problem


def test_a_clean_url_passes():
    assert (
        gateway_url_problems("FBR_API_BASE_URL", "https://fbr.example.com", production=True) == []
    )
