"""`doradus._secrets`: passwords in URLs and secret options never reach what Doradus shows."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doradus._exceptions import TransportError
from doradus._secrets import MASK, is_secret_key, redact, redact_options, redact_url
from doradus.backends._mqtt import MqttSettings
from doradus.backends._network import ConnectBound
from doradus.backends._redis import RedisSettings
from doradus.backends._tls import TlsFiles


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:pw@127.0.0.1:6379/0", "redis://user:***@127.0.0.1:6379/0"),
        ("rediss://default:p%40ss@h:6380/1", "rediss://default:***@h:6380/1"),
        ("mqtt://robot:pw@[::1]:1883", "mqtt://robot:***@[::1]:1883"),
        ("mqtt://robot@broker", "mqtt://robot@broker"),  # a user name alone is not a secret
        ("mqtt://robot:@broker", "mqtt://robot:@broker"),  # nor an empty password
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("wss://h/x?token=abc&mode=1", "wss://h/x?token=***&mode=1"),
        ("http://h/?access_token=abc;x=1", "http://h/?access_token=***;x=1"),
    ],
)
def test_a_url_keeps_everything_but_its_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_every_url_in_a_message_is_masked() -> None:
    message = "tried redis://:a@h1/0, then mqtt://u:b@h2:1883 (ws://h3/?token=c): refused"
    assert (
        redact(message) == "tried redis://:***@h1/0, then mqtt://u:***@h2:1883 (ws://h3/?token=***): refused"
    )


def test_options_are_masked_by_key_and_by_value() -> None:
    options = {
        "url": "redis://:pw@h/0",
        "password": "pw",
        "tls": {"ca": "ca.pem", "key_passphrase": "pw"},
        "peers": ["mqtt://u:pw@a", "mqtt://b"],
        "qos": 1,
        "api_token": "",  # empty: nothing to hide, shown as is
    }
    shown = redact_options(options)
    assert shown == {
        "url": "redis://:***@h/0",
        "password": MASK,
        "tls": {"ca": "ca.pem", "key_passphrase": MASK},
        "peers": ["mqtt://u:***@a", "mqtt://b"],
        "qos": 1,
        "api_token": "",
    }
    assert options["password"] == "pw"  # a copy: the options themselves still work


def test_secret_keys_are_recognised_in_any_case() -> None:
    assert all(map(is_secret_key, ["PASSWORD", "Token", "client_secret", "auth", "passwd"]))
    assert not any(map(is_secret_key, ["url", "mode", "qos", "ca", "cert", "key", "listen"]))


PASSWORDS = st.text(string.ascii_letters + string.digits + "!$&'()*+,;=-._~%", min_size=4, max_size=40)


@given(user=st.text(string.ascii_letters, max_size=8), password=PASSWORDS, port=st.integers(1, 65535))
def test_no_password_survives_redaction(user: str, password: str, port: int) -> None:
    for scheme in ("redis", "rediss", "mqtt", "mqtts"):
        url = f"{scheme}://{user}:{password}@host.example:{port}/0"
        shown = redact(f"could not reach {url}: refused")
        assert f":{password}@" not in shown
        assert f"{scheme}://{user}:***@host.example:{port}/0" in shown


def test_the_connect_error_of_every_network_backend_is_masked() -> None:
    error = ConnectBound(3, 0.1).unreachable(
        "a", "redis at redis://:pw@h/0", OSError("refused by mqtt://u:pw@h")
    )
    assert "pw" not in str(error)
    assert "redis://:***@h/0" in str(error)


def test_an_invalid_broker_url_is_refused_without_its_password() -> None:
    with pytest.raises(TransportError) as caught:
        MqttSettings.from_options({"url": "http://u:hunter2@h"})
    assert "hunter2" not in str(caught.value)
    assert "http://u:***@h" in str(caught.value)


def test_a_tls_option_needs_a_tls_url() -> None:
    with pytest.raises(
        TransportError, match=r"needs a URL with TLS \(rediss://…\), not 'redis://:\*\*\*@h/0'"
    ):
        RedisSettings.from_options({"url": "redis://:pw@h/0", "tls": {"ca": "ca.pem"}})
    with pytest.raises(TransportError, match="without its `cert`"):
        MqttSettings.from_options({"url": "mqtts://h", "tls": {"key": "k.pem"}})
    with pytest.raises(TransportError, match="must be true or a map of ca, cert, key"):
        MqttSettings.from_options({"url": "mqtts://h", "tls": {"verify": False}})  # never turned off
    assert MqttSettings.from_options({"url": "mqtts://h"}).port == 8883
    assert TlsFiles.from_option(None, url="mqtts://h", option="mqtt") == TlsFiles()
