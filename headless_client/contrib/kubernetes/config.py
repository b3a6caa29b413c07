"""Where the Kubernetes API is and how to log in: in-cluster configuration and kubeconfig.

:class:`KubernetesConfig` is a value: the API server's URL, how to trust it (CA data or
file, or no verification), and how to authenticate (a bearer token or token file, or a
client certificate). Three ways to get one:

- :func:`in_cluster_config`: a pod's service account, as client-go's ``InClusterConfig``:
  ``KUBERNETES_SERVICE_HOST`` / ``KUBERNETES_SERVICE_PORT``, the token, CA and namespace
  under ``/var/run/secrets/kubernetes.io/serviceaccount``. The token file is re-read before
  every request, because kubelet rotates projected tokens (they expire after an hour);
- :func:`load_kubeconfig`: a minimal reader of the common kubeconfig shapes (a token or
  token file, a client certificate and key, CA data or file, ``insecure-skip-tls-verify``,
  ``tls-server-name``, the context's namespace). Credential plugins (``exec``), auth
  providers, username/password and proxies are refused with :class:`KubeConfigError`
  naming the user entry: pass a :class:`KubernetesConfig` with a token instead;
- :func:`auto_config`: in-cluster when ``KUBERNETES_SERVICE_HOST`` is set, else the
  kubeconfig (``$KUBECONFIG``'s first file, else ``~/.kube/config``).

Reading YAML needs PyYAML (the ``kubernetes`` extra); a kubeconfig written as JSON does not.
Nothing here is logged with a secret in it: tokens and keys never appear in a repr or a
message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from ...errors import InvalidName, KubeConfigError
from ...names import validate_label

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "KubernetesConfig",
    "auto_config",
    "in_cluster_config",
    "load_kubeconfig",
]

SERVICE_ACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
_MAX_FILE: Final = 1 << 20  # a kubeconfig, token or certificate larger than 1 MiB is not one


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    """How to reach and log in to a Kubernetes API server.

    Args:
        server: ``https://host:port`` (``http://`` only for tests and ``kubectl proxy``).
        ca_data: PEM certificates to trust (the cluster's CA).
        ca_file: a PEM file to trust instead.
        verify: ``False`` skips certificate verification (kubeconfig's
            ``insecure-skip-tls-verify``): only for tests.
        tls_server_name: the name to verify in the server's certificate, when it is not the
            URL's host.
        token: a bearer token.
        token_file: a file holding the bearer token, re-read before every request.
        client_cert_data: a PEM client certificate (mTLS login), with *client_key_data*.
        client_key_data: its PEM private key.
        client_cert_file: a client certificate file, with *client_key_file*.
        client_key_file: its key file.
        namespace: the default namespace (the pod's, or the kubeconfig context's).

    Raises:
        KubeConfigError: a server URL that is not ``http(s)://host[:port]``, or a
            certificate without its key.
    """

    server: str
    ca_data: bytes | None = field(default=None, repr=False)
    ca_file: str | None = None
    verify: bool = True
    tls_server_name: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    client_cert_data: bytes | None = field(default=None, repr=False)
    client_key_data: bytes | None = field(default=None, repr=False)
    client_cert_file: str | None = None
    client_key_file: str | None = None
    namespace: str | None = None

    def __post_init__(self) -> None:
        url = urllib.parse.urlsplit(self.server)
        if "@" in url.netloc:
            # A password there would be sent nowhere (no basic auth) yet shown in every error
            # and log line naming the server; refuse it without echoing the URL.
            raise KubeConfigError(
                "server must be http(s)://host[:port], without a user or password: log in with a "
                "token, a token file or a client certificate"
            )
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
            raise KubeConfigError(f"server must be http(s)://host[:port], not {self.server!r}")
        try:
            url.port  # noqa: B018 - validates the port
        except ValueError:
            raise KubeConfigError(f"server {self.server!r} has an invalid port") from None
        has_cert = self.client_cert_data is not None or self.client_cert_file is not None
        has_key = self.client_key_data is not None or self.client_key_file is not None
        if has_cert != has_key:
            raise KubeConfigError("a client certificate needs its key (and a key its certificate)")
        if self.namespace is not None:
            try:
                validate_label(self.namespace, "namespace")
            except InvalidName as exc:
                raise KubeConfigError(str(exc)) from None

    @property
    def host(self) -> str:
        """The server's host (an IPv6 address without brackets)."""
        host = urllib.parse.urlsplit(self.server).hostname
        assert host is not None
        return host

    @property
    def port(self) -> int:
        """The server's port (443 or 80 by default)."""
        url = urllib.parse.urlsplit(self.server)
        return url.port or (443 if url.scheme == "https" else 80)

    @property
    def tls(self) -> bool:
        """True for an ``https`` server."""
        return self.server.startswith("https:")

    def with_namespace(self, namespace: str | None) -> KubernetesConfig:
        """A copy with another default namespace."""
        return replace(self, namespace=namespace)

    def bearer_token(self) -> str | None:
        """The token to send now: *token*, else the current content of *token_file*.

        Raises:
            KubeConfigError: the token file cannot be read.
        """
        if self.token is not None:
            return self.token
        if self.token_file is None:
            return None
        text = _read(self.token_file, "token file").decode("utf-8", "replace").strip()
        return text or None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context for an ``https`` server (None for ``http``).

        Raises:
            KubeConfigError: a CA or client certificate that cannot be loaded.
        """
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        try:
            if not self.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif self.ca_data is not None:
                context.load_verify_locations(cadata=self.ca_data.decode("ascii", "replace"))
            elif self.ca_file is not None:
                context.load_verify_locations(cafile=self.ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise KubeConfigError(f"cannot load the cluster CA ({self.ca_file or 'ca_data'}): {exc}") from exc
        if self.client_cert_file is not None or self.client_cert_data is not None:
            _load_client_cert(context, self)
        return context

    def server_hostname(self) -> str | None:
        """The name TLS verifies (None for an IP address without *tls_server_name*: then
        the certificate must carry that IP)."""
        if self.tls_server_name:
            return self.tls_server_name
        return self.host


def _load_client_cert(context: ssl.SSLContext, config: KubernetesConfig) -> None:
    """``load_cert_chain`` reads only files: PEM data goes through a private temporary
    directory (mode 0700) that is removed at once."""
    try:
        if config.client_cert_file is not None and config.client_key_file is not None:
            context.load_cert_chain(config.client_cert_file, config.client_key_file)
            return
        cert_data = config.client_cert_data
        if cert_data is None:
            cert_data = _read(config.client_cert_file or "", "client certificate")
        key_data = config.client_key_data
        if key_data is None:
            key_data = _read(config.client_key_file or "", "client key")
        with tempfile.TemporaryDirectory(prefix="headless-client-") as tmp:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            for path, data in ((cert, cert_data), (key, key_data)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise KubeConfigError(f"cannot load the client certificate and key: {exc}") from exc


# -- in-cluster ------------------------------------------------------------------------------


def in_cluster_config(
    environ: Mapping[str, str] | None = None,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
) -> KubernetesConfig:
    """The configuration of a pod's service account.

    Args:
        environ: the environment to read (default ``os.environ``).
        service_account_dir: where ``token``, ``ca.crt`` and ``namespace`` are mounted.

    Raises:
        KubeConfigError: not in a pod (no ``KUBERNETES_SERVICE_HOST``/``PORT``, or no
            token file): the message says which is missing.
    """
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeConfigError(
            "not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set "
            "(pass a KubernetesConfig or use load_kubeconfig() outside a cluster)"
        )
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise KubeConfigError(f"KUBERNETES_SERVICE_PORT is not a port: {port!r}")
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    directory = Path(service_account_dir)
    token_file = directory / "token"
    if not token_file.is_file():
        raise KubeConfigError(
            f"no service-account token at {token_file} (automountServiceAccountToken: false?)"
        )
    ca_file = directory / "ca.crt"
    namespace = None
    with contextlib.suppress(OSError):
        namespace = (directory / "namespace").read_text(encoding="utf-8").strip() or None
    return KubernetesConfig(
        server=f"https://{host}:{port}",
        ca_file=str(ca_file) if ca_file.is_file() else None,
        token_file=str(token_file),
        namespace=namespace,
    )


# -- kubeconfig ------------------------------------------------------------------------------

_UNSUPPORTED_USER_KEYS: Final = {
    "exec": "a credential plugin (exec)",
    "auth-provider": "an auth provider",
    "username": "basic authentication (username/password)",
    "password": "basic authentication (username/password)",
    "as": "impersonation (as)",
}


def load_kubeconfig(
    path: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> KubernetesConfig:
    """Read a kubeconfig's context (its cluster, user and namespace).

    Args:
        path: the file; default ``$KUBECONFIG``'s first entry, else ``~/.kube/config``.
        context: the context to use; default the file's ``current-context``.
        environ: the environment for ``KUBECONFIG`` (default ``os.environ``).

    Relative file paths in the file (``certificate-authority``, ``client-certificate``,
    ``tokenFile``...) are relative to the file's directory, as kubectl reads them.

    Raises:
        KubeConfigError: the file is missing or malformed, the context, cluster or user is
            missing, or the user authenticates in a way this reader does not support.
    """
    env = os.environ if environ is None else environ
    if path is None:
        first = next((p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p), None)
        path = first if first is not None else Path.home() / ".kube" / "config"
    where = Path(path)
    doc = _parse_document(_read(where, "kubeconfig"), where)
    name = context or doc.get("current-context")
    if not name:
        raise KubeConfigError(f"{where}: no current-context, and no context= given")
    ctx = _named(doc, "contexts", "context", name, where)
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not cluster_name:
        raise KubeConfigError(f"{where}: context {name!r} names no cluster")
    cluster = _named(doc, "clusters", "cluster", cluster_name, where)
    user = _named(doc, "users", "user", user_name, where) if user_name else {}
    for key, what in _UNSUPPORTED_USER_KEYS.items():
        if user.get(key):
            raise KubeConfigError(
                f"{where}: user {user_name!r} uses {what}, which headless-client does not support: "
                "use a token, a token file or a client certificate (or pass KubernetesConfig(token=...))"
            )
    if cluster.get("proxy-url"):
        raise KubeConfigError(f"{where}: cluster {cluster_name!r} uses proxy-url, which is not supported")
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeConfigError(f"{where}: cluster {cluster_name!r} has no server")
    base = where.parent
    try:
        return KubernetesConfig(
            server=server.rstrip("/"),
            ca_data=_b64(cluster.get("certificate-authority-data"), "certificate-authority-data", where),
            ca_file=_relative(cluster.get("certificate-authority"), base),
            verify=not bool(cluster.get("insecure-skip-tls-verify", False)),
            tls_server_name=cluster.get("tls-server-name") or None,
            token=user.get("token") or None,
            token_file=_relative(user.get("tokenFile"), base),
            client_cert_data=_b64(user.get("client-certificate-data"), "client-certificate-data", where),
            client_key_data=_b64(user.get("client-key-data"), "client-key-data", where),
            client_cert_file=_relative(user.get("client-certificate"), base),
            client_key_file=_relative(user.get("client-key"), base),
            namespace=ctx.get("namespace") or None,
        )
    except KubeConfigError as exc:
        raise KubeConfigError(f"{where}: context {name!r}: {exc}") from None


def auto_config(environ: Mapping[str, str] | None = None) -> KubernetesConfig:
    """In a pod (``KUBERNETES_SERVICE_HOST`` set): :func:`in_cluster_config`; else
    :func:`load_kubeconfig`.

    Raises:
        KubeConfigError: neither works; the message says what was tried.
    """
    env = os.environ if environ is None else environ
    if env.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_config(env)
    return load_kubeconfig(environ=env)


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except OSError as exc:
        raise KubeConfigError(f"cannot read the {what} {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_FILE:
        raise KubeConfigError(f"the {what} {os.fspath(path)!r} is larger than 1 MiB")
    return data


def _parse_document(data: bytes, where: Path) -> dict[str, Any]:
    text = data.decode("utf-8", "replace")
    doc: Any
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML comes with the kubernetes extra
            raise KubeConfigError(
                f"{where} is YAML: install PyYAML (pip install 'headless-client[kubernetes]')"
            ) from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise KubeConfigError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise KubeConfigError(f"{where} is not a kubeconfig (a mapping with clusters, users, contexts)")
    return doc


def _named(doc: Mapping[str, Any], section: str, key: str, name: str, where: Path) -> dict[str, Any]:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise KubeConfigError(f"{where}: {section} is not a list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(key) or {}
            if not isinstance(body, dict):
                raise KubeConfigError(f"{where}: {section} entry {name!r} is not a mapping")
            return body
    raise KubeConfigError(f"{where}: no {key} named {name!r} in {section}")


def _b64(value: object, what: str, where: Path) -> bytes | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise KubeConfigError(f"{where}: {what} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KubeConfigError(f"{where}: {what} is not valid base64") from None


def _relative(value: object, base: Path) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise KubeConfigError(f"a file path must be a string, not {value!r}")
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else base / path)
