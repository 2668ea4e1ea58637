"""Generate the Python API code in gridshift/api/v1 from protos/ (what `make protos` runs).

The generated files are committed and never edited by hand; a test regenerates them into a
temporary folder and fails when the committed copies differ.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = PROJECT_ROOT / "protos"
PROTO_PACKAGE = Path("gridshift/api/v1")


def proto_files() -> list[Path]:
    """The .proto files of the public API, relative to protos/."""
    return sorted(p.relative_to(PROTO_ROOT) for p in (PROTO_ROOT / PROTO_PACKAGE).glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools, in a subprocess) into out_dir; returns the files made."""
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p) for p in proto_files()],
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"protoc failed: {done.stderr.strip()}")
    return sorted((out_dir / PROTO_PACKAGE).glob("*_pb2*.py*"))


def main() -> int:
    generated = generate(PROJECT_ROOT)
    for path in generated:
        print(f"generated {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
