"""The principals file: who may call the service, how they prove it, for which teams and with
which permissions.

A TOML file with one ``[[principal]]`` table per principal::

    [[principal]]
    name = "research-planner"
    token_sha256 = "9f86d081884c7d65..."   # SHA-256 (hex) of its bearer token; never the token
    teams = ["research"]                   # "*": every team
    permissions = ["plan", "read"]         # plan, read, admin

    [[principal]]
    name = "reporting"
    client_cert = "reporting.example.internal"   # a client certificate's CN or SAN
    teams = ["*"]
    permissions = ["read"]

Tokens are random secrets (``gridshift token``), so one SHA-256 is enough to keep the file from
revealing them (no password stretching is needed for high-entropy secrets)."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gridshift.optimizer.errors import FieldViolation, InvalidInputError

__all__ = ["ALL_TEAMS", "PERMISSIONS", "Principal", "Principals", "hash_token",
           "read_principals"]

PERMISSIONS = ("plan", "read", "admin")
ALL_TEAMS = "*"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Principal:
    """Who a call comes from. ``teams`` None: every team."""

    name: str
    teams: frozenset[str] | None
    permissions: frozenset[str]

    def may(self, permission: str) -> bool:
        return permission in self.permissions or "admin" in self.permissions

    def sees_team(self, team: str) -> bool:
        return self.teams is None or "admin" in self.permissions or team in self.teams

    @property
    def all_teams(self) -> bool:
        return self.teams is None or "admin" in self.permissions


@dataclass(frozen=True)
class Principals:
    """The principals of a file, by token hash and by certificate identity."""

    by_token_hash: dict[str, Principal]
    by_certificate: dict[str, Principal]

    def for_token(self, token: str) -> Principal | None:
        return self.by_token_hash.get(hash_token(token))

    def for_certificate(self, identities: list[str]) -> Principal | None:
        for identity in identities:
            if identity in self.by_certificate:
                return self.by_certificate[identity]
        return None


def hash_token(token: str) -> str:
    """The SHA-256 (hex) the principals file stores for a bearer token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_principals(path: str | Path) -> Principals:
    """The principals of a file; InvalidInputError naming every problem (at path[i].key)."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInputError([FieldViolation(where, f"cannot read: {exc}")]) from None
    entries = data.get("principal", [])
    problems: list[FieldViolation] = []
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError([FieldViolation(where, "no [[principal]] tables")])
    unknown = sorted(set(data) - {"principal"})
    problems += [FieldViolation(f"{where}: {k}", "unknown table or key") for k in unknown]
    by_token: dict[str, Principal] = {}
    by_cert: dict[str, Principal] = {}
    names: set[str] = set()
    for i, entry in enumerate(entries):
        at = f"{where}: principal[{i}]"
        if not isinstance(entry, dict):
            problems.append(FieldViolation(at, "must be a table"))
            continue
        extra = sorted(set(entry) - {"name", "token_sha256", "client_cert", "teams",
                                     "permissions"})
        problems += [FieldViolation(f"{at}.{k}", "unknown key") for k in extra]
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(FieldViolation(f"{at}.name", "required text"))
            continue
        if name in names:
            problems.append(FieldViolation(f"{at}.name", f"{name!r} given twice"))
        names.add(name)
        teams = entry.get("teams", [])
        if not isinstance(teams, list) or not teams or \
                not all(isinstance(t, str) and t for t in teams):
            problems.append(FieldViolation(f"{at}.teams", "a non-empty list of team names "
                                                          "(\"*\": every team)"))
            continue
        permissions = entry.get("permissions", [])
        bad = [p for p in permissions if p not in PERMISSIONS] if isinstance(
            permissions, list) else [permissions]
        if not isinstance(permissions, list) or not permissions or bad:
            problems.append(FieldViolation(f"{at}.permissions", f"a non-empty list of "
                                           f"{', '.join(PERMISSIONS)}; got {permissions!r}"))
            continue
        principal = Principal(name=name.strip(),
                              teams=None if ALL_TEAMS in teams else frozenset(teams),
                              permissions=frozenset(permissions))
        token_hash, cert = entry.get("token_sha256"), entry.get("client_cert")
        if token_hash is None and cert is None:
            problems.append(FieldViolation(at, "needs token_sha256 or client_cert"))
        if token_hash is not None:
            if not isinstance(token_hash, str) or not _HEX64.fullmatch(token_hash.lower()):
                problems.append(FieldViolation(f"{at}.token_sha256",
                                               "64 hexadecimal digits (the token's SHA-256)"))
            elif token_hash.lower() in by_token:
                problems.append(FieldViolation(f"{at}.token_sha256", "the same token as "
                                               f"{by_token[token_hash.lower()].name!r}"))
            else:
                by_token[token_hash.lower()] = principal
        if cert is not None:
            if not isinstance(cert, str) or not cert.strip():
                problems.append(FieldViolation(f"{at}.client_cert", "required text"))
            else:
                by_cert[cert.strip()] = principal
    if problems:
        raise InvalidInputError(problems)
    return Principals(by_token, by_cert)
