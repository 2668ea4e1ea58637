"""TLS, mutual TLS, bearer tokens and client-certificate identities, per-team authorisation,
the audit log, reflection for admins only and rate limits: real TLS on a loopback port with a
CA, server and client certificates made here."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from conftest import job, make_app, small_request
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.adapters.principals import hash_token
from gridshift.adapters.store import PlanStore
from gridshift.api.v1 import plans_pb2
from gridshift.service.servicer import start_server
from gridshift.settings import InvalidSettingsError, SecuritySettings, ServerSettings

TOKENS = {"research": "tok-research-0123456789", "admin": "tok-admin-0123456789",
          "reader": "tok-reader-0123456789"}


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key, issuer_name: str, issuer_key, *, ca: bool = False,
          sans: list | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate 'reporting'
    and one 'stranger' (signed by the CA, not a principal), as PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("gridshift test CA", ca_key, "gridshift test CA", ca_key, ca=True)
    files = {"ca": ca.public_bytes(serialization.Encoding.PEM)}
    server_key = _key()
    files["server_key"] = _pem_key(server_key)
    files["server_cert"] = _cert(
        "localhost", server_key, "gridshift test CA", ca_key,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    ).public_bytes(serialization.Encoding.PEM)
    for name in ("reporting", "stranger"):
        key = _key()
        files[f"{name}_key"] = _pem_key(key)
        files[f"{name}_cert"] = _cert(name, key, "gridshift test CA", ca_key).public_bytes(
            serialization.Encoding.PEM)
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(data)
    paths["tokens"] = folder / "principals.toml"
    paths["tokens"].write_text(principals_text())
    return paths


def principals_text(**extra_tokens: str) -> str:
    entries = [("research", TOKENS["research"], '["research"]', '["plan", "read"]'),
               ("admin", TOKENS["admin"], '["*"]', '["admin"]'),
               ("reader", TOKENS["reader"], '["research"]', '["read"]'),
               *((name, token, '["research"]', '["plan", "read"]')
                 for name, token in extra_tokens.items())]
    text = "".join(f'[[principal]]\nname = "{n}"\ntoken_sha256 = "{hash_token(t)}"\n'
                   f"teams = {teams}\npermissions = {perms}\n\n" for n, t, teams, perms in entries)
    return text + ('[[principal]]\nname = "reporting"\nclient_cert = "reporting"\n'
                   'teams = ["*"]\npermissions = ["read"]\n')


@contextmanager
def secure_server(pki: dict[str, Path], store: PlanStore | None = None, *, mutual: bool = False,
                  **security) -> Iterator[tuple[str, object]]:
    settings = SecuritySettings(tls_cert=str(pki["server_cert"]), tls_key=str(pki["server_key"]),
                                client_ca=str(pki["ca"]) if mutual else "",
                                tokens_file=str(pki["tokens"]), **security)
    server = start_server(make_app(store=store), ServerSettings(port=0), security=settings)
    try:
        yield f"localhost:{server.port}", server
    finally:
        server.server.stop(0).wait()


def client(pki: dict[str, Path], target: str, who: str | None = None, *,
           cert: str | None = None) -> SchedulerClient:
    return SchedulerClient(target, retries=False, ca=pki["ca"].read_bytes(),
                           token=TOKENS[who] if who else None,
                           cert=pki[f"{cert}_cert"].read_bytes() if cert else None,
                           key=pki[f"{cert}_key"].read_bytes() if cert else None)


def team_request(*teams: str) -> dict:
    request = small_request()
    request["jobs"] = [job(f"{team}-{i}", team=team) for i, team in enumerate(teams)]
    return request


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PlanStore]:
    plan_store = PlanStore(f"sqlite:///{tmp_path / 'plans.sqlite'}")
    yield plan_store
    plan_store.close()


def test_tls_and_tokens_authenticate_and_health_stays_open(pki) -> None:
    with secure_server(pki) as (target, _):
        with SchedulerClient(target, retries=False) as plaintext:
            assert code_of(lambda: plaintext.health(timeout=5)) == grpc.StatusCode.UNAVAILABLE
        with client(pki, target) as anonymous:
            assert anonymous.health() == "SERVING"
            assert code_of(lambda: anonymous.optimize(team_request("research"), timeout=30)
                           ) == grpc.StatusCode.UNAUTHENTICATED
        with SchedulerClient(target, retries=False, ca=pki["ca"].read_bytes(),
                             token="not-a-known-token") as wrong:
            assert code_of(lambda: wrong.optimize(team_request("research"), timeout=30)
                           ) == grpc.StatusCode.UNAUTHENTICATED
        with client(pki, target, "research") as research:
            response = research.optimize(team_request("research"), timeout=30)
            assert response.plan_id


def test_each_principal_plans_and_reads_only_for_its_teams(pki, store: PlanStore,
                                                          caplog) -> None:
    caplog.set_level(logging.INFO, logger="gridshift.audit")
    with secure_server(pki, store) as (target, _), client(pki, target, "research") as research, \
            client(pki, target, "admin") as admin, client(pki, target, "reader") as reader:
        assert code_of(lambda: research.optimize(team_request("research", "applied"),
                                                 timeout=30)) == grpc.StatusCode.PERMISSION_DENIED
        mine = research.optimize(team_request("research"), timeout=30).plan_id
        theirs = admin.optimize(team_request("applied"), timeout=30).plan_id
        mixed = admin.optimize(team_request("research", "applied"), timeout=30).plan_id
        listed = {p.plan_id for p in research.stub.ListPlans(plans_pb2.ListPlansRequest(),
                                                             timeout=30).plans}
        assert listed == {mine}
        every = {p.plan_id for p in admin.stub.ListPlans(plans_pb2.ListPlansRequest(),
                                                         timeout=30).plans}
        assert every == {mine, theirs, mixed}
        assert reader.stub.GetPlan(plans_pb2.GetPlanRequest(plan_id=mine), timeout=30)
        for plan_id in (theirs, mixed):
            assert code_of(lambda p=plan_id: reader.stub.GetPlan(
                plans_pb2.GetPlanRequest(plan_id=p), timeout=30)
            ) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda: reader.optimize(team_request("research"), timeout=30)
                       ) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda: research.stub.ListPlans(plans_pb2.ListPlansRequest(
            team="applied"), timeout=30)) == grpc.StatusCode.PERMISSION_DENIED
        report = plans_pb2.GetCarbonReportRequest(format="json")
        report.start.FromJsonString("2026-06-15T00:00:00Z")
        report.end.FromJsonString("2026-06-16T00:00:00Z")
        answer = research.stub.GetCarbonReport(report, timeout=60)
        assert {row.team for row in answer.rows} == {"research"}
        report.team = "applied"
        assert code_of(lambda: research.stub.GetCarbonReport(report, timeout=60)
                       ) == grpc.StatusCode.PERMISSION_DENIED
    lines = [r for r in caplog.records if r.name == "gridshift.audit"]
    made = [r for r in lines if r.method.endswith("/Optimize") and r.code == "OK"]
    assert {(r.principal, r.plan_id) for r in made} >= {("research", mine), ("admin", theirs)}
    assert any(r.code == "PERMISSION_DENIED" and r.principal == "reader" for r in lines)


def test_mutual_tls_identifies_the_client_certificate(pki, store: PlanStore) -> None:
    with secure_server(pki, store, mutual=True) as (target, _):
        with client(pki, target, "research") as no_certificate:
            assert code_of(lambda: no_certificate.health(timeout=5)
                           ) == grpc.StatusCode.UNAVAILABLE
        with client(pki, target, cert="reporting") as reporting:
            assert reporting.health() == "SERVING"
            assert reporting.stub.ListPlans(plans_pb2.ListPlansRequest(), timeout=30) is not None
            assert code_of(lambda: reporting.optimize(team_request("research"), timeout=30)
                           ) == grpc.StatusCode.PERMISSION_DENIED
        with client(pki, target, cert="stranger") as stranger:
            assert code_of(lambda: stranger.stub.ListPlans(plans_pb2.ListPlansRequest(),
                                                           timeout=30)
                           ) == grpc.StatusCode.UNAUTHENTICATED


def test_reflection_is_for_admins_and_rate_limits_apply_per_principal(pki, store) -> None:
    from grpc_reflection.v1alpha import reflection_pb2

    ask = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
    with secure_server(pki, store, rate_limit_per_s=0.5, rate_limit_burst=3) as (target, _):
        with client(pki, target, "research") as research, client(pki, target, "admin") as admin:
            assert code_of(lambda: list(research.channel.stream_stream(path)(
                iter([ask]), timeout=10))) == grpc.StatusCode.PERMISSION_DENIED
            assert list(admin.channel.stream_stream(path)(iter([ask]), timeout=10))
            codes = []
            for _ in range(5):
                try:
                    research.stub.ListPlans(plans_pb2.ListPlansRequest(), timeout=10)
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
            assert "RESOURCE_EXHAUSTED" in codes
            # another principal has its own bucket
            admin.stub.ListPlans(plans_pb2.ListPlansRequest(), timeout=10)


def test_sighup_reload_takes_new_principals(pki, tmp_path: Path) -> None:
    tokens = tmp_path / "principals.toml"
    tokens.write_text(principals_text())
    own = dict(pki, tokens=tokens)
    with secure_server(own) as (target, server):
        with SchedulerClient(target, retries=False, ca=pki["ca"].read_bytes(),
                             token="tok-newcomer-0123456789") as newcomer:
            call = lambda: newcomer.stub.ListPlans(plans_pb2.ListPlansRequest(),  # noqa: E731
                                                   timeout=10)
            assert code_of(call) == grpc.StatusCode.UNAUTHENTICATED
            tokens.write_text(principals_text(newcomer="tok-newcomer-0123456789"))
            server.reload()
            with pytest.raises(grpc.RpcError) as caught:
                call()   # authenticated now: no store in this app, so UNIMPLEMENTED
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_server_beyond_loopback_needs_tls_and_principals(pki) -> None:
    with pytest.raises(InvalidSettingsError) as info:
        start_server(make_app(), ServerSettings(host="0.0.0.0", port=0),
                     security=SecuritySettings())
    assert "allow_insecure" in str(info.value)


def test_the_cli_reaches_a_tls_server_with_a_token(pki, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["research"] + "\n")
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(team_request("research")))
    with secure_server(pki) as (target, _):
        done = subprocess.run(
            [sys.executable, "-m", "gridshift.cli", "plan", str(request_file), "--server",
             target, "--ca", str(pki["ca"]), "--token-file", str(token_file), "-o",
             str(tmp_path / "plan.json")], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        denied = subprocess.run(
            [sys.executable, "-m", "gridshift.cli", "plan", str(request_file), "--server",
             target, "--ca", str(pki["ca"])], capture_output=True, text=True, timeout=120)
        assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr
        health = subprocess.run(
            [sys.executable, "-m", "gridshift.cli", "health", "--server", target, "--ca",
             str(pki["ca"])], capture_output=True, text=True, timeout=60)
        assert health.returncode == 0 and "SERVING" in health.stdout
