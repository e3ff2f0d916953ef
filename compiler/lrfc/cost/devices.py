"""Where latency is measured: this machine, a device over ssh, or nowhere (estimate).

``link_for`` turns a target profile and the ``--device`` option into a
``DeviceLink`` (or None when the target cannot be reached), and a link runs
runtime_bench there. The rule:

* ``--device ssh://user@host[:port]``: measure on that device (runtime_bench
  is copied there and run with the device's Python, see ``runtime_bench.remote``);
* ``--device local``: measure on this machine, whatever the profile says
  (for running lrfc on the device itself);
* no ``--device``: the ``host`` profiles (``host``, ``host-int8``) are this
  machine; any other profile is a device lrfc cannot reach, so latencies are
  roofline *estimates*;
* ``--device`` repeated: a farm (``links_for``). The first device is the
  primary: the plan is priced, whole models timed and the final benchmark run
  on it; layer chains are measured on all of them (``cost.latency``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lrfc.errors import UserError

HOST_PROFILES = ("host", "host-int8")


def timing_io(runtime: str) -> str:
    """How lrfc's prices are timed on ``runtime`` (runtime_bench's ``io``): ``device`` on a GPU, ``host`` elsewhere.

    On a GPU, numpy in and out would charge a layer's micro-benchmark the copy of its input map to the GPU and of
    its output map back, which inside a whole model never happen, and every plan pays the model's own copies
    alike. With them timed, the H200 probe read 5.1 TFLOP/s and 6.3 us per operator; with the maps left on the
    GPU, 14.6 and 4.1 (docs/BENCHMARKS.md). The cost database keys GPU prices apart (``costdb.runtime_key``).
    """
    from runtime_bench.runners import RUNNERS

    runner = RUNNERS.get(runtime)
    return "device" if runner is not None and runner.gpu else "host"


@dataclass(frozen=True)
class DeviceLink:
    """How to reach the device that runs the benchmarks (``url`` None: this machine)."""

    url: str | None = None
    python: str = "python3"
    identity: str | None = None
    ssh_options: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.url or "this machine"

    def bench(self, paths, **options) -> dict:
        """``runtime_bench`` results on this device: ``{"device": ..., "results": [...]}``."""
        if self.url is None:
            from runtime_bench.measure import bench

            return bench([str(p) for p in paths], **options)
        from runtime_bench.remote import bench_remote, parse_device

        return bench_remote(parse_device(self.url), [str(p) for p in paths], python=self.python,
                            identity=self.identity, ssh_options=self.ssh_options, **options)

    def describe(self, runtime: str) -> dict:
        """``{"device": fingerprint for runtime, "runtimes": {name: None | why not}}``, asked once per link."""
        return _describe(self, runtime)

    def fingerprint(self, runtime: str) -> dict:
        return dict(self.describe(runtime)["device"])

    def runtime_reason(self, runtime: str) -> str | None:
        """None when ``runtime`` can run on this device, else why not."""
        return self.describe(runtime)["runtimes"].get(runtime, f"unknown runtime {runtime!r}")


@functools.lru_cache(maxsize=32)
def _describe(link: DeviceLink, runtime: str) -> dict:
    if link.url is None:
        from runtime_bench.device import fingerprint
        from runtime_bench.runners import RUNNERS

        return {"device": fingerprint(runtime), "runtimes": {n: r.available() for n, r in RUNNERS.items()}}
    from runtime_bench.remote import describe_remote

    try:
        return describe_remote(link.url, runtime, python=link.python, identity=link.identity,
                               ssh_options=link.ssh_options)
    except (RuntimeError, OSError, ValueError) as exc:
        raise UserError(f"--device: {exc}") from None


def link_for(profile, device: str | None, python: str = "python3", identity: str | None = None,
             ssh_options=()) -> DeviceLink | None:
    """The link to ``profile``'s device, or None when latency can only be estimated."""
    if device is None:
        return DeviceLink() if profile.name in HOST_PROFILES else None
    if device == "local":
        return DeviceLink()
    from runtime_bench.remote import parse_device

    try:
        parse_device(device)
    except ValueError as exc:
        raise UserError(f"--device: {exc}") from None
    return DeviceLink(device, python, identity, tuple(ssh_options))


def links_for(profile, devices, python: str = "python3", identity: str | None = None,
              ssh_options=()) -> list[DeviceLink]:
    """One link per ``--device`` URL, in order (the first is the primary); ``link_for``'s rule without any."""
    if not devices:
        link = link_for(profile, None, python, identity, ssh_options)
        return [] if link is None else [link]
    return [link_for(profile, url, python, identity, ssh_options) for url in devices]


def measured_runtimes(profile, link: DeviceLink) -> tuple[list[str], dict[str, str]]:
    """The profile's runtimes that can run on ``link``, in preference order, and why the others can't."""
    usable, skipped = [], {}
    for runtime in profile.runtimes:
        reason = link.runtime_reason(runtime)
        if reason is None:
            usable.append(runtime)
        else:
            skipped[runtime] = reason
    return usable, skipped
