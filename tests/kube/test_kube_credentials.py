"""Loading credentials: kubeconfig forms and the pod's service account (the TLS and token use
itself is proven against the real API server in tests/k8s/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmrunner.kube.credentials import from_kubeconfig, in_cluster
from vmrunner.kube.errors import KubeProblem

KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: dev
contexts:
- {{name: dev, context: {{cluster: c, user: u}}}}
- {{name: other, context: {{cluster: c, user: v}}}}
clusters:
- {{name: c, cluster: {{server: "{server}", insecure-skip-tls-verify: true}}}}
users:
- {{name: u, user: {{token: abc}}}}
- {{name: v, user: {{tokenFile: tok}}}}
"""


def test_kubeconfig_token_and_token_file(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(KUBECONFIG.format(server="https://[::1]:6443/prefix/"))
    endpoint = from_kubeconfig(path)
    assert (endpoint.host, endpoint.port, endpoint.prefix, endpoint.token) == (
        "::1", 6443, "/prefix", "abc")
    (tmp_path / "tok").write_text("first\n")
    endpoint = from_kubeconfig(path, "other")
    assert endpoint.token == "first" and endpoint.token_file == tmp_path / "tok"
    (tmp_path / "tok").write_text("rotated\n")
    assert endpoint.read_token() == "rotated"


@pytest.mark.parametrize(("server", "context", "message"), [
    ("http://127.0.0.1:8080", None, "an https:// URL is needed"),
    ("https://127.0.0.1", "missing", "no context named 'missing'"),
])
def test_kubeconfig_errors(tmp_path: Path, server: str, context: str | None,
                           message: str) -> None:
    path = tmp_path / "kc"
    path.write_text(KUBECONFIG.format(server=server))
    with pytest.raises(KubeProblem, match=message) as raised:
        from_kubeconfig(path, context)
    assert raised.value.status == -1 and str(path) in str(raised.value)


def test_service_account(tmp_path: Path) -> None:
    with pytest.raises(KubeProblem, match="KUBERNETES_SERVICE_HOST"):
        in_cluster(tmp_path, {})
    with pytest.raises(KubeProblem, match=r"ca\.crt"):
        in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.0.0.1",
                              "KUBERNETES_SERVICE_PORT": "443"})
