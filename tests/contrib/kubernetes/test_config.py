"""In-cluster configuration and kubeconfig parsing, from files in temporary directories."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

import pytest
import trustme
import yaml

from headless_client.contrib.kubernetes import (
    KubernetesConfig,
    auto_config,
    in_cluster_config,
    load_kubeconfig,
)
from headless_client.errors import InvalidName, KubeConfigError


def service_account(tmp_path: Path, ca: trustme.CA, *, namespace: str = "prod") -> Path:
    """A mounted service account: token, ca.crt, namespace."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("token-1\n")
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    (directory / "namespace").write_text(namespace)
    return directory


def test_in_cluster_reads_env_token_ca_and_namespace(tmp_path: Path) -> None:
    """KUBERNETES_SERVICE_HOST/PORT, the token file, the CA file and the namespace are used."""
    ca = trustme.CA()
    directory = service_account(tmp_path, ca)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = in_cluster_config(env, directory)
    assert config.server == "https://10.96.0.1:443"
    assert config.namespace == "prod" and config.token is None
    assert config.bearer_token() == "token-1"
    assert config.ca_file == str(directory / "ca.crt")
    assert isinstance(config.ssl_context(), ssl.SSLContext)


def test_in_cluster_token_is_read_again_after_rotation(tmp_path: Path) -> None:
    """kubelet rotates projected tokens: every request reads the file anew."""
    directory = service_account(tmp_path, trustme.CA())
    config = in_cluster_config({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "6443"}, directory)
    (directory / "token").write_text("token-2")
    assert config.bearer_token() == "token-2"


def test_in_cluster_ipv6_host_is_bracketed(tmp_path: Path) -> None:
    """An IPv6 service host gives a bracketed URL."""
    directory = service_account(tmp_path, trustme.CA())
    config = in_cluster_config({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, directory)
    assert config.server == "https://[fd00::1]:443" and config.host == "fd00::1" and config.port == 443


def test_not_in_a_pod_is_a_clear_error(tmp_path: Path) -> None:
    """Without the variables, or without a token, the error says what is missing."""
    with pytest.raises(KubeConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_config({}, tmp_path)
    with pytest.raises(KubeConfigError, match="no service-account token"):
        in_cluster_config({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path)
    with pytest.raises(KubeConfigError, match="'https'"):
        in_cluster_config({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "https"}, tmp_path)


def kubeconfig(user: dict[str, object], cluster: dict[str, object] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "contexts": [
            {"name": "dev", "context": {"cluster": "c1", "user": "u1", "namespace": "team"}},
            {"name": "other", "context": {"cluster": "c1", "user": "u1"}},
        ],
        "clusters": [{"name": "c1", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u1", "user": user}],
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_kubeconfig_yaml_with_token_and_ca_data(tmp_path: Path) -> None:
    """The current context's server, namespace, token and CA data are read from YAML."""
    ca = trustme.CA()
    doc = kubeconfig(
        {"token": "secret-token"},
        {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(ca.cert_pem.bytes())},
    )
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    config = load_kubeconfig(path)
    assert (config.server, config.namespace, config.bearer_token()) == ("https://127.0.0.1:6443", "team", "secret-token")
    assert config.ca_data == ca.cert_pem.bytes()
    assert "secret-token" not in repr(config)
    assert load_kubeconfig(path, context="other").namespace is None


def test_kubeconfig_json_with_client_cert_files_relative_to_it(tmp_path: Path) -> None:
    """Relative certificate paths are relative to the kubeconfig's directory; JSON works too."""
    ca = trustme.CA()
    cert = ca.issue_cert("client")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    doc = kubeconfig(
        {"client-certificate": "client.crt", "client-key": "client.key"},
        {"server": "https://k8s.example:6443", "certificate-authority": "ca.crt", "tls-server-name": "kubernetes"},
    )
    path = tmp_path / "kubeconfig.json"
    path.write_text(json.dumps(doc))
    config = load_kubeconfig(path)
    assert config.client_cert_file == str(tmp_path / "client.crt")
    assert config.ca_file == str(tmp_path / "ca.crt")
    assert config.server_hostname() == "kubernetes"
    assert isinstance(config.ssl_context(), ssl.SSLContext)


def test_kubeconfig_client_cert_data_builds_a_context(tmp_path: Path) -> None:
    """Inline client certificate and key data load into the TLS context."""
    ca = trustme.CA()
    cert = ca.issue_cert("client")
    doc = kubeconfig(
        {"client-certificate-data": b64(cert.cert_chain_pems[0].bytes()), "client-key-data": b64(cert.private_key_pem.bytes())},
        {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True},
    )
    (tmp_path / "config").write_text(yaml.safe_dump(doc))
    config = load_kubeconfig(environ={"KUBECONFIG": str(tmp_path / "config")})
    assert config.verify is False
    context = config.ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    ("user", "what"),
    [
        ({"exec": {"command": "aws", "args": ["eks", "get-token"]}}, "credential plugin"),
        ({"auth-provider": {"name": "gcp"}}, "auth provider"),
        ({"username": "admin", "password": "pw"}, "basic authentication"),
    ],
)
def test_unsupported_authentication_is_named(tmp_path: Path, user: dict[str, object], what: str) -> None:
    """exec plugins, auth providers and basic auth are refused, naming the user entry."""
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(kubeconfig(user)))
    with pytest.raises(KubeConfigError, match=rf"user 'u1' uses .*{what}") as info:
        load_kubeconfig(path)
    assert "pw" not in str(info.value)
    assert isinstance(info.value, InvalidName)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "not a kubeconfig"),
        ("clusters: [\n", "not valid YAML"),
        ("clusters: []\ncontexts: []\nusers: []\n", "no current-context"),
        (json.dumps(kubeconfig({})).replace('"c1"', '"gone"', 1), "no context named|no cluster named"),
    ],
)
def test_malformed_kubeconfigs_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    """Broken files give a KubeConfigError naming the file and the problem."""
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(KubeConfigError, match=message) as info:
        load_kubeconfig(path)
    assert str(path) in str(info.value)


def test_missing_kubeconfig_and_bad_values(tmp_path: Path) -> None:
    """A missing file, bad base64, a bad server URL or a certificate without key are refused."""
    with pytest.raises(KubeConfigError, match="cannot read the kubeconfig"):
        load_kubeconfig(tmp_path / "nope")
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(kubeconfig({"token": "t"}, {"server": "https://h:1", "certificate-authority-data": "%%%"})))
    with pytest.raises(KubeConfigError, match="certificate-authority-data is not valid base64"):
        load_kubeconfig(path)
    with pytest.raises(KubeConfigError, match="ftp://x"):
        KubernetesConfig(server="ftp://x")
    with pytest.raises(KubeConfigError, match="needs its key"):
        KubernetesConfig(server="https://h", client_cert_data=b"x")


@pytest.mark.parametrize("server", ["https://admin:s3cret@h:6443", "ftp://admin:s3cret@h", "https://s3cret@h"])
def test_a_server_url_with_credentials_is_refused_without_echoing_them(tmp_path: Path, server: str) -> None:
    """A user or password in the server URL is refused, and the error (which the watch would
    log) does not repeat it, whether built directly or read from a kubeconfig."""
    with pytest.raises(KubeConfigError, match="without a user or password") as info:
        KubernetesConfig(server=server)
    assert "s3cret" not in str(info.value)
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(kubeconfig({"token": "t"}, {"server": server})))
    with pytest.raises(KubeConfigError, match="without a user or password") as info:
        load_kubeconfig(path)
    assert "s3cret" not in str(info.value)


def test_auto_config_prefers_in_cluster_then_kubeconfig(tmp_path: Path) -> None:
    """In a pod the service account wins; elsewhere $KUBECONFIG is read."""
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(kubeconfig({"token": "t"})))
    assert auto_config({"KUBECONFIG": str(path)}).namespace == "team"
    with pytest.raises(KubeConfigError, match="no service-account token"):
        auto_config({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBECONFIG": str(path)})
