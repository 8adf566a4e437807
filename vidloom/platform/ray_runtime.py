"""Connecting to Ray: the cluster named by RAY_ADDRESS (as under `ray job submit`), or a
local one started for this process. Every vidloom job goes through `init_ray`."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = True,
             log_to_driver: bool = True) -> dict:
    """Connect to (or start) Ray once; returns ``ray.cluster_resources()``.

    `address` (or RAY_ADDRESS) connects to a running cluster (``auto`` = the one `ray start`
    runs on this machine); otherwise a new local Ray starts with `num_cpus` (default: all
    cores). `log_to_driver=False` keeps the workers' output in Ray's log files (jobs that show
    their own progress line). Ray 2.60's token authentication must be configured
    the same way on both sides (RAY_AUTH_MODE); a mismatch is reported with what to set.
    """
    import ray

    if ray.is_initialized():
        return ray.cluster_resources()
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict = {"ignore_reinit_error": True, "log_to_driver": log_to_driver}
    if quiet:
        kwargs["logging_level"] = logging.WARNING
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # "local" always starts a fresh Ray for this process; plain ray.init() would
            # silently join whatever cluster `ray start` left running on this machine.
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
    except Exception as exc:  # noqa: BLE001 - add the one hint users need, keep the cause
        text = str(exc)
        if "auth" in text.lower() or "token" in text.lower():
            mode = os.environ.get("RAY_AUTH_MODE", "(unset)")
            raise RuntimeError(
                f"could not connect to Ray at {address or 'a new local cluster'}: {text}. "
                f"RAY_AUTH_MODE is {mode}; it must match the cluster's setting (and the token, "
                "RAY_AUTH_TOKEN or the token file, must be the cluster's)."
            ) from exc
        raise
    return ray.cluster_resources()
