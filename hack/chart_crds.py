"""Copy the generated CRDs (crds/) into the Helm chart (charts/trtllm-operator/files/crds/),
byte for byte, so the chart installs exactly what `kubectl apply -k manifests/base` does.

    python -m hack.chart_crds           # after `python -m trtllm_operator.api.crdgen`
    python -m hack.chart_crds --check   # exit 1 when the chart's copies are stale

No symlinks (a packaged chart must carry the files). Standard library only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hack.paths import ROOT

SOURCE = ROOT / "crds"
CHART_CRDS = ROOT / "charts" / "trtllm-operator" / "files" / "crds"


def crd_files(folder: Path) -> dict[str, bytes]:
    """File name -> bytes of every CRD in a folder (crds/ also holds a kustomization.yaml)."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.trtllm-operator.dev.yaml"))}


def stale(source: Path = SOURCE, target: Path = CHART_CRDS) -> list[str]:
    """Names of the CRD files missing, extra or different in the chart."""
    want, have = crd_files(source), crd_files(target)
    return sorted(name for name in want.keys() | have.keys() if want.get(name) != have.get(name))


def sync(source: Path = SOURCE, target: Path = CHART_CRDS) -> list[str]:
    """Make the chart's copies equal to the source: write changed files, remove extra ones;
    returns the names touched."""
    target.mkdir(parents=True, exist_ok=True)
    want = crd_files(source)
    touched = stale(source, target)
    for name in touched:
        if name in want:
            (target / name).write_bytes(want[name])
        else:
            (target / name).unlink()
    return touched


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        for name in names:
            print(
                f"chart_crds: {CHART_CRDS / name} is stale; run python -m hack.chart_crds",
                file=sys.stderr,
            )
        return 1 if names else 0
    for name in sync():
        print(f"chart_crds: updated {CHART_CRDS / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
