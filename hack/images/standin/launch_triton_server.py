"""Stand-in for Triton's scripts/launch_triton_server.py: tritonserver, via mpirun for ranks > 1.

Unlike the original it stays in the foreground; the operator does not use it (it runs tritonserver
itself), it exists so the image has every path the toolchain profile names.
"""

import argparse
import os

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world_size", type=int, default=1)
    parser.add_argument("--model_repo", required=True)
    parser.add_argument("--tritonserver", default="tritonserver")
    parser.add_argument("--http_port", default="8000")
    parser.add_argument("--grpc_port", default="8001")
    parser.add_argument("--metrics_port", default="8002")
    args, _ = parser.parse_known_args()
    rank = [
        args.tritonserver,
        f"--model-repository={args.model_repo}",
        f"--http-port={args.http_port}",
        f"--grpc-port={args.grpc_port}",
        f"--metrics-port={args.metrics_port}",
    ]
    command = rank if args.world_size == 1 else ["mpirun", "--allow-run-as-root", "-n", "1", *rank]
    os.execvp(command[0], command)
