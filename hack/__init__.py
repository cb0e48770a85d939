"""Developer tools: the local cluster (control plane, fake GPU fleet, real node), its images and
Prometheus.

Run them as modules from the repository root, e.g. `python -m hack.cluster up`; tests and the
benchmark import them (`from hack import cluster`). hack/images/ and hack/standin/ hold files that
are copied into container images: standalone scripts, not part of this package's API.
"""
