"""``python -m visa_hub.testing.openstack_sim --port 5000 --workdir /tmp/os-sim``: serve the simulator.

Prints a ``clouds.yaml`` for it and writes it to ``<workdir>/clouds.yaml``
(use with ``OS_CLIENT_CONFIG_FILE=<workdir>/clouds.yaml OS_CLOUD=visa-sim``). Its VMs run their user_data
as root in a sandbox (needs root and bubblewrap) whose image holds the instance environment at
/opt/visa-instance: provisioned from this checkout with scripts/provision-instance.sh (cached), or given.
It also serves the site's NFS file server from ``<workdir>/file-server/<server>/<path>`` (export
``<server>:<path>``), for homes shared by several instances (``OpenStackSpawner.home_source``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

import yaml

from .app import OpenStackSimulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m visa_hub.testing.openstack_sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--workdir", type=Path, default=Path("openstack-sim"),
                        help="directory for server logs, volumes and clouds.yaml (default %(default)s)")
    parser.add_argument("--boot-delay", type=float, default=2.0, help="seconds from create to ACTIVE")
    parser.add_argument("--app-credential", action="store_true",
                        help="write an application-credential clouds.yaml instead of a password one")
    parser.add_argument("--catalog", default="",
                        help="also seed the flavours and images of this site catalog YAML ('demo': the demo "
                             "catalog), with an unlimited quota, so a hub with visa-openstack can use it")
    parser.add_argument("--instance-env", default="auto",
                        help="the instance environment the VM image holds at /opt/visa-instance: a provisioned "
                             "directory, 'auto' (provision it from this checkout, cached; default) or 'none'")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def seed_catalog(sim: OpenStackSimulator, path: str) -> None:
    """Flavours and cloud images named as in a site catalog (in addition to the defaults); no quota limits."""
    from visa_hub.catalog import load_catalog

    if path == "demo":
        from visa_hub.demo import DEMO_CATALOG as path  # noqa: N811
    catalog = load_catalog(path)
    for flavour in catalog.flavours:
        sim.add_flavor(flavour.name, flavour.cpus, int(flavour.memory_gb * 1024), 20)
    for image in catalog.images:
        sim.add_image(image.cloud_image or image.name)
    sim.set_quota(instances=-1, cores=-1, ram=-1, volumes=-1, gigabytes=-1, floating_ips=-1)


def image_files(choice: str) -> dict[str, Path]:
    """What the VM image holds besides the host's /usr: the instance environment, per ``--instance-env``."""
    if choice == "none":
        return {}
    if choice == "auto":
        from ..instance_env import REPO, SCRIPT, ensure_instance_env

        if not (REPO / SCRIPT).exists():
            raise SystemExit("--instance-env auto needs a visa-hub checkout; give a provisioned directory")
        return {"/opt/visa-instance": ensure_instance_env()}
    return {"/opt/visa-instance": Path(choice).resolve()}


async def serve(args: argparse.Namespace) -> None:
    sim = OpenStackSimulator(args.workdir, host=args.host, boot_delay=args.boot_delay,
                             image_files=image_files(args.instance_env))
    if args.catalog:
        seed_catalog(sim, args.catalog)
    await sim.start(args.port)
    clouds = yaml.safe_dump(sim.clouds_yaml(use_app_credential=args.app_credential), sort_keys=False)
    (sim.workdir / "clouds.yaml").write_text(clouds)
    print(f"# OpenStack simulator on {sim.url}; clouds.yaml written to {sim.workdir / 'clouds.yaml'}")
    print(f"# its NFS file server: {sim.file_server}/<server>/<path> is the export <server>:<path>")
    print(clouds, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
