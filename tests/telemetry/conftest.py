"""Fixtures: real OTLP receivers (HTTP and gRPC) on 127.0.0.1, a free port each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.telemetry.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver


@pytest.fixture
def otlp_http() -> Iterator[OtlpHttpReceiver]:
    """A started OTLP/HTTP receiver; ``otlp_http.endpoint``, ``otlp_http.collected``."""
    with OtlpHttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def otlp_grpc() -> Iterator[OtlpGrpcReceiver]:
    """A started OTLP/gRPC receiver; ``otlp_grpc.endpoint``, ``otlp_grpc.collected``."""
    with OtlpGrpcReceiver() as receiver:
        yield receiver
