"""Talking to a Ray cluster's Jobs API (`JobSubmissionClient`) with Ray 2.60 token auth.

Ray only attaches its token to HTTP requests when the client process runs with
``RAY_AUTH_MODE=token``; a mismatch surfaces as a bare 401/403. Here the token is read and sent
explicitly, and both mismatches become one error that says what to set.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
AUTH_MODES = ("token", "disabled")


class JobsError(RuntimeError):
    """A Jobs API call failed for a reason the user can fix (address, auth, job id)."""


def resolve_address(address: str | None = None) -> str:
    """The Jobs API URL: `address`, else RAY_ADDRESS when it is an http(s) URL, else localhost:8265."""
    address = address or os.environ.get("RAY_ADDRESS") or ""
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    if address and address != "auto":
        raise JobsError(f"the Jobs API needs the dashboard's http address (e.g. {DEFAULT_ADDRESS}), got {address!r}")
    return DEFAULT_ADDRESS


def auth_mode(mode: str | None = None) -> str:
    """`mode`, else RAY_AUTH_MODE, else ``disabled`` (Ray's own client default)."""
    mode = (mode or os.environ.get("RAY_AUTH_MODE") or "disabled").lower()
    if mode not in AUTH_MODES:
        raise JobsError(f"RAY_AUTH_MODE / --auth must be one of {', '.join(AUTH_MODES)}, got {mode!r}")
    return mode


def read_token() -> tuple[str, str]:
    """The auth token and where it came from: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        raise JobsError(f"token authentication is on (RAY_AUTH_MODE=token) but there is no token: set RAY_AUTH_TOKEN "
                        f"or put the cluster's token in {path} (RAY_AUTH_TOKEN_PATH)")
    return token, str(path)


def auth_headers(mode: str) -> tuple[dict[str, str], str]:
    """HTTP headers for a cluster in auth `mode` (the token's Bearer header, or none) and where
    the token came from."""
    if mode != "token":
        return {}, ""
    token, source = read_token()
    return {"Authorization": f"Bearer {token}"}, source


def connect(address: str | None = None, mode: str | None = None):
    """A `JobSubmissionClient` for the cluster, with the auth header when token auth is on."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    url = resolve_address(address)
    mode = auth_mode(mode)
    headers, source = auth_headers(mode)
    try:
        return JobSubmissionClient(url, headers=headers)
    except AuthenticationError as exc:
        raise auth_error(url, mode, source, exc) from None
    except ConnectionError as exc:
        raise JobsError(f"no Ray dashboard answers at {url} ({exc}); pass --address http://HEAD:8265") from None


def auth_error(url: str, mode: str, source: str, exc: Exception) -> JobsError:
    """The one message for an auth mismatch between this client and the cluster."""
    if mode != "token":
        return JobsError(f"the cluster at {url} requires token authentication but RAY_AUTH_MODE is "
                         f"{os.environ.get('RAY_AUTH_MODE', 'unset')}: set RAY_AUTH_MODE=token (or pass --auth token) "
                         "with the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN")
    return JobsError(f"the cluster at {url} rejected the token from {source}: it is not this cluster's token "
                     f"(copy the head node's ~/.ray/auth_token or set RAY_AUTH_TOKEN) [{str(exc).splitlines()[0]}]")


def call(client, method: str, *args, **kwargs):
    """`client.<method>(...)` with auth failures turned into `JobsError`."""
    from ray.exceptions import AuthenticationError

    try:
        return getattr(client, method)(*args, **kwargs)
    except AuthenticationError as exc:
        mode = "token" if client._headers.get("Authorization") else "disabled"  # noqa: SLF001 - no public getter
        raise auth_error(client._address, mode, "the configured token", exc) from None
