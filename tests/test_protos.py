"""The committed generated API code must match what `make protos` produces."""

from __future__ import annotations

from pathlib import Path

from gridshift import protogen


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    generated = protogen.generate(tmp_path)
    assert generated, "protoc produced nothing"
    committed_dir = protogen.PROJECT_ROOT / protogen.PROTO_PACKAGE
    for fresh in generated:
        committed = committed_dir / fresh.name
        assert committed.exists(), f"{committed} missing: run `make protos`"
        assert committed.read_bytes() == fresh.read_bytes(), (
            f"{committed.name} is out of date with protos/: run `make protos`")
    stale = {p.name for p in committed_dir.glob("*_pb2*.py*")} - {p.name for p in generated}
    assert not stale, f"generated files without a .proto: {sorted(stale)}"


def test_demo_request_is_a_valid_proto_message() -> None:
    from google.protobuf import json_format

    from gridshift.api.v1 import optimize_pb2 as pb
    from gridshift.app.demo import demo_request

    message = json_format.ParseDict(demo_request(), pb.OptimizeRequest())
    assert len(message.jobs) == 60
