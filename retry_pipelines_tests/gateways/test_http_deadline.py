"""The overall request deadline: how a passed deadline is classified, and what it lets through."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest

from retry_pipelines.domain.errors import Delivery, ErrorType
from retry_pipelines.gateways.fbr import FbrSettings
from retry_pipelines.gateways.http import (
    RequestDeadlineExceeded,
    check_deadline,
    request_deadline,
    transport_failure,
)
from retry_pipelines.gateways.oauth import ClientCredentials
from retry_pipelines.gateways.paypal import PaypalSettings


@pytest.mark.parametrize(
    ("side_effects", "delivery"),
    [pytest.param(True, Delivery.AMBIGUOUS, id="post"), (False, Delivery.NOT_DELIVERED)],
)
def test_a_passed_deadline_is_classified_like_a_read_timeout(side_effects, delivery):
    exc = RequestDeadlineExceeded(2.5)
    assert isinstance(exc, httpx.ReadTimeout)
    failure = transport_failure(exc, side_effects=side_effects)
    read = transport_failure(httpx.ReadTimeout("timed out"), side_effects=side_effects)
    assert (failure.error_type, failure.delivery) == (read.error_type, read.delivery)
    assert (failure.error_type, failure.delivery) == (ErrorType.NETWORK, delivery)
    assert failure.error_code == "RequestDeadlineExceeded"
    assert failure.message == "RequestDeadlineExceeded: request deadline of 2.5 s passed"


@pytest.mark.parametrize(
    ("side_effects", "delivery"),
    [pytest.param(True, Delivery.AMBIGUOUS, id="post"), (False, Delivery.NOT_DELIVERED)],
)
def test_a_bare_timeout_error_is_a_network_failure(side_effects, delivery):
    failure = transport_failure(TimeoutError(), side_effects=side_effects)
    assert (failure.error_type, failure.delivery) == (ErrorType.NETWORK, delivery)


def test_request_deadline_raises_its_own_error_when_it_passes():
    async def go():
        async with request_deadline(0.01):
            await asyncio.Event().wait()

    with pytest.raises(RequestDeadlineExceeded, match=r"request deadline of 0\.01 s passed"):
        asyncio.run(go())


def test_request_deadline_lets_other_errors_and_results_through():
    async def inner_timeout():
        async with request_deadline(60):
            raise TimeoutError("the block's own")

    async def fine():
        async with request_deadline(60):
            await asyncio.sleep(0)
        return "done"

    with pytest.raises(TimeoutError, match="the block's own") as caught:
        asyncio.run(inner_timeout())
    assert not isinstance(caught.value, RequestDeadlineExceeded)
    assert asyncio.run(fine()) == "done"


@pytest.mark.parametrize("seconds", [0, -1.0, math.nan, math.inf])
def test_check_deadline_refuses_unusable_values(seconds):
    with pytest.raises(ValueError, match="request_deadline must be a finite number of seconds"):
        check_deadline("request_deadline", seconds)


def test_settings_default_the_deadline_to_read_plus_connect_timeout():
    fbr = FbrSettings("http://fbr", connect_timeout=2.0, read_timeout=3.0)
    paypal = PaypalSettings("http://pp", "id", "secret", connect_timeout=1.0, read_timeout=4.0)
    assert (fbr.deadline, paypal.deadline) == (5.0, 5.0)
    assert FbrSettings("http://fbr").deadline == 35.0
    assert FbrSettings("http://fbr", request_deadline=7.5).deadline == 7.5
    assert PaypalSettings("http://pp", "id", "secret", request_deadline=9.0).deadline == 9.0


@pytest.mark.parametrize("field", ["request_deadline", "read_timeout", "connect_timeout"])
def test_settings_refuse_a_deadline_or_timeout_that_is_not_finite_and_positive(field):
    with pytest.raises(ValueError, match=field):
        FbrSettings("http://fbr", **{field: math.inf})
    with pytest.raises(ValueError, match=field):
        PaypalSettings("http://pp", "id", "secret", **{field: 0.0})


def test_the_token_client_refuses_an_unusable_deadline():
    http = httpx.AsyncClient()
    with pytest.raises(ValueError, match="deadline"):
        ClientCredentials(http, client_id="id", client_secret="secret", deadline=math.nan)
