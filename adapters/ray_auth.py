"""Ray's token authentication, as a client on this machine joins a cluster.

Ray 2.5x and later start a cluster with token authentication where ``RAY_AUTH_MODE`` is unset
and a token exists in ``~/.ray/auth_token`` (or ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``);
its dashboard, Jobs API and state API then refuse requests without the token. ``ray start``
joins such a cluster by turning token mode on for its own process where a token exists; the
clients here do the same, and do nothing where Ray is older or ``RAY_AUTH_MODE`` is set.
"""

from __future__ import annotations

__all__ = ["join_with_token_if_any"]


def join_with_token_if_any() -> bool:
    """Use this machine's Ray token for requests to a cluster, as ``ray start`` does to join
    (sets ``RAY_AUTH_MODE=token`` in this process where it is unset and a token exists);
    whether token mode is on."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:
        return False
    return bool(maybe_enable_token_auth_if_token_available(warn_if_disabled=False))
