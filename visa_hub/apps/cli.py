"""``visa-app``: list, inspect, run, register, bundle and reproduce apps from the command line.

    visa-app list [--all] [--json]           apps and versions (default version marked *)
    visa-app info NAME[@VERSION] [--check]   details; --check verifies images and digests
    visa-app run NAME[@VERSION] [ARGS...]    run an app version (its command or runscript, with ARGS)
    visa-app exec NAME[@VERSION] CMD [ARGS]  run a command inside an app's image
    visa-app register IMAGE --name N --version V [--title T] [--kind K] [--kernel python]
    visa-app unregister NAME[@VERSION]       forget one of your registered images
    visa-app bundle [--cycle C] [-o FILE] [--references-only]
    visa-app records                         your provenance records
    visa-app reproduce RECORD [--dry-run]    start the app versions a record lists, checked against its digests
    visa-app digest IMAGE                    the digest a catalog entry needs (sha256 of the squashfs partition)
    visa-app menu --openbox | --desktop-entries DIR
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ..sitedata import SiteDataError
from .bundle import BundleError, write_bundle
from .catalog import KERNEL_ARGV, KINDS, AppCatalog, AppError, AppVersion
from .images import DigestCache, ImageError, open_image, verify_image
from .launch import app_command, check_version, prepare, run_kernel, start
from .menu import desktop_entries, openbox_pipe_menu, sync_desktop_entries
from .provenance import ProvenanceError, find_record, list_records, read_record
from .runtime import RuntimeUnavailable
from .settings import AppSettings
from .source import CatalogSource


class CliError(Exception):
    pass


def self_command() -> list[str]:
    """How to call visa-app again (menus, kernels): this Python, this module."""
    return [sys.executable, "-m", "visa_hub.apps.cli"]


def _context(settings: AppSettings) -> tuple[CatalogSource, AppCatalog]:
    source = CatalogSource(settings)
    catalog = source.load()
    for problem in catalog.problems:
        print(f"visa-app: {problem}", file=sys.stderr)
    return source, catalog


# -- list / info ---------------------------------------------------------------------------------------------
def cmd_list(args, settings: AppSettings) -> int:
    source, catalog = _context(settings)
    cycle = source.cycle(catalog)
    rows = []
    for app in catalog.apps:
        if not args.all and not app.serves(settings.instrument):
            continue
        default = catalog.default_version(app, cycle)
        for version in app.versions:
            rows.append({**version.to_dict(), "default": version is default})
    if args.json:
        print(json.dumps({"cycle": cycle.name if cycle else None, "apps": rows}, indent=2))
        return 0
    where = f" for {settings.experiment_code} on {settings.instrument}" if settings.experiment_code else ""
    print(f"Apps{where}" + (f" (cycle {cycle.name})" if cycle else "") + ":")
    if not rows:
        print("  none" + ("" if settings.catalog_locations else " (VISA_APPS_CATALOG is not set)"))
    for row in rows:
        marks = [m for m in (row["status"] if row["status"] != "current" else "",
                             "your image" if row["user_provided"] else "") if m]
        print(f"  {row['ref'] + ('*' if row['default'] else ''):<28} {row['title'] + ' ' + row['version']:<32} "
              f"{row['kind']:<8} {', '.join(marks)}".rstrip())
    return 0


def cmd_info(args, settings: AppSettings) -> int:
    source, catalog = _context(settings)
    cycle = source.cycle(catalog)
    name, _, wanted = args.app.partition("@")
    app = catalog.app(name)
    if app is None:
        catalog.resolve(name)  # raises the AppError naming the apps
        return 1
    versions = [catalog.resolve(args.app, cycle)] if wanted else list(app.versions)
    default = catalog.default_version(app, cycle)
    print(f"{app.title} ({app.name}){' — your image' if app.user_provided else ''}")
    print(f"  kind: {app.kind}; instruments: {', '.join(app.instruments) or 'all'}")
    if app.description:
        print(f"  {app.description}")
    status = 0
    for version in versions:
        print(f"  {version.version}{' (default)' if version is default else ''}: {version.status}")
        print(f"    image:  {version.image}")
        print(f"    digest: {version.digest or '(not recorded)'}")
        if version.kernel:
            print(f"    kernel: {version.kernel.language}")
        if version.notes:
            print(f"    notes:  {version.notes}")
        if args.check:
            try:
                check_version(version, settings)
                print("    check:  image present, digest matches")
            except ImageError as exc:
                print(f"    check:  FAILED — {exc}")
                status = 1
    return status


# -- running ---------------------------------------------------------------------------------------------
def cmd_run(args, settings: AppSettings) -> int:
    source, catalog = _context(settings)
    version = catalog.resolve(args.app, source.cycle(catalog))
    argv, runscript = app_command(version, args.args)
    prepared = prepare(version, catalog, settings, argv, runscript=runscript, expected_digest=args.digest)
    return start(prepared, settings, "run")


def cmd_exec(args, settings: AppSettings) -> int:
    source, catalog = _context(settings)
    version = catalog.resolve(args.app, source.cycle(catalog))
    prepared = prepare(version, catalog, settings, [args.command, *args.args], expected_digest=args.digest)
    return start(prepared, settings, "exec")


def cmd_kernel(args, settings: AppSettings) -> int:
    return run_kernel(args.app, args.connection_file, settings)


# -- her own images -----------------------------------------------------------------------------------------
def _registry(settings: AppSettings) -> dict[str, Any]:
    path = settings.registry_file
    if not path.exists():
        return {"apps": []}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML ({exc}); fix or remove it first") from None
    if not isinstance(data, dict) or not isinstance(data.get("apps", []), list):
        raise CliError(f"{path}: must be a mapping with an apps list; fix or remove it first")
    data.setdefault("apps", [])
    return data


def _save_registry(settings: AppSettings, data: dict[str, Any]) -> None:
    path = settings.registry_file
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text("# Your own app images (visa-app register / unregister). Marked 'your image' everywhere.\n"
                         + yaml.safe_dump(data, sort_keys=False))
    temporary.replace(path)


def cmd_register(args, settings: AppSettings) -> int:
    _source, catalog = _context(settings)
    image_path = Path(args.image).expanduser().resolve()
    label = f"{args.name}@{args.version} (your image)"
    image = open_image(image_path, label)
    digest = verify_image(image, None, label, DigestCache(settings.data_dir / "digests.json"))
    existing = catalog.app(args.name)
    if existing is not None and not existing.user_provided:
        raise CliError(f"{args.name!r} is a site app; choose another --name for your image")
    data = _registry(settings)
    app = next((a for a in data["apps"] if isinstance(a, dict) and a.get("name") == args.name), None)
    if app is None:
        app = {"name": args.name, "title": args.title or args.name, "kind": args.kind, "versions": []}
        data["apps"].append(app)
    if args.kernel:
        app["kernel"] = {"language": args.kernel}
        app["kind"] = "kernel" if args.kind == "command" else args.kind
    app["versions"] = [v for v in app.get("versions", []) if str(v.get("version")) != args.version]
    app["versions"].append({"version": args.version, "image": str(image_path), "digest": digest})
    _save_registry(settings, data)
    print(f"Registered {args.name}@{args.version}: {image_path} ({digest}). It is marked as your image; "
          f"run it with: visa-app run {args.name}@{args.version}")
    return 0


def cmd_unregister(args, settings: AppSettings) -> int:
    name, _, version = args.app.partition("@")
    data = _registry(settings)
    kept, removed = [], False
    for app in data["apps"]:
        if isinstance(app, dict) and app.get("name") == name:
            versions = [v for v in app.get("versions", []) if version and str(v.get("version")) != version]
            removed = removed or len(versions) != len(app.get("versions", []))
            if versions:
                kept.append({**app, "versions": versions})
        else:
            kept.append(app)
    if not removed:
        raise CliError(f"You have no registered image {args.app!r} (visa-app list shows yours as 'your image')")
    _save_registry(settings, {**data, "apps": kept})
    print(f"Unregistered {args.app}; the image file itself was not touched.")
    return 0


# -- bundles and provenance ---------------------------------------------------------------------------------------
def cmd_bundle(args, settings: AppSettings) -> int:
    source, catalog = _context(settings)
    cycle = catalog.cycle(args.cycle) if args.cycle else source.cycle(catalog)
    if cycle is None:
        known = ", ".join(c.name for c in catalog.cycles) or "none"
        raise CliError(f"No proposal cycle {args.cycle or 'for this session'} in the app catalog (cycles: {known})")
    output = Path(args.output or f"visa-apps-{cycle.name}.tar")
    data = write_bundle(output, catalog, cycle, settings, include_images=not args.references_only)
    print(f"Bundle of cycle {cycle.name}: {output} ({len(data['apps'])} apps)")
    for entry in data["apps"]:
        print(f"  {entry['app']}@{entry['version']}  {entry['digest']}")
    print("Unpack it and run ./run.sh list, ./run.sh APP [ARGS] (apptainer, or squashfuse + bubblewrap)")
    return 0


def cmd_records(args, settings: AppSettings) -> int:
    records = list_records(settings)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for record in records:
        print(f"{record['id']}  {record['experiment'] or '-'}  {record['updated_at']}  {', '.join(record['apps'])}")
    if not records:
        print(f"No provenance records yet in {settings.provenance_dir}")
    return 0


def reproduction_plan(record: dict[str, Any], catalog: AppCatalog) -> list[tuple[AppVersion, dict[str, Any]]]:
    """The record's app versions, found in today's catalog (exact version); the record's digest is checked later."""
    plan = []
    for entry in record.get("apps", []):
        try:
            version = catalog.resolve(f"{entry['app']}@{entry['version']}")
        except AppError as exc:
            raise CliError(f"The record needs {entry['app']}@{entry['version']}, which is no longer available: "
                           f"{exc}") from None
        plan.append((version, entry))
    return plan


def cmd_reproduce(args, settings: AppSettings) -> int:
    record = read_record(find_record(settings, args.record))
    _source, catalog = _context(settings)
    plan = reproduction_plan(record, catalog)
    for version, entry in plan:  # check everything before starting anything
        check_version(version, settings, expected=entry["digest"])
    print(f"Reproducing {record.get('id')}: {', '.join(v.ref for v, _ in plan) or 'no apps'}")
    status = 0
    for version, entry in plan:
        for launch in _distinct_launches(entry):
            if launch["how"] == "kernel":
                print(f"  {version.ref}: kernel '{version.label}' — start it from JupyterLab (Launcher, or the "
                      "Apps panel's Reproduce, which starts it)")
                continue
            print(f"  {version.ref}: {' '.join(launch['argv']) or '(runscript)'}")
            if args.dry_run:
                continue
            argv = _relaunch_argv(version, launch, entry["digest"])
            env = dict(os.environ)
            if version.kind == "desktop":
                subprocess.Popen(argv, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
            else:
                status = subprocess.run(argv, env=env).returncode or status
    return status


def _relaunch_argv(version: AppVersion, launch: dict[str, Any], digest: str) -> list[str]:
    """The visa-app command that repeats a recorded launch, pinned to the recorded digest."""
    if launch["how"] == "exec":
        return [*self_command(), "exec", "--digest", digest, version.ref, *launch["argv"]]
    args = launch["argv"] if launch["runscript"] or not version.command else launch["argv"][len(version.command):]
    return [*self_command(), "run", "--digest", digest, version.ref, *args]


def _distinct_launches(entry: dict[str, Any]) -> list[dict[str, Any]]:
    seen, launches = set(), []
    for launch in entry.get("launches", []):
        key = (launch.get("how"), tuple(launch.get("argv", [])), bool(launch.get("runscript")))
        if key not in seen:
            seen.add(key)
            launches.append({"how": launch.get("how", "run"), "argv": list(launch.get("argv", [])),
                             "runscript": bool(launch.get("runscript"))})
    return launches


def cmd_digest(args, settings: AppSettings) -> int:
    image = open_image(Path(args.image), args.image)
    print(verify_image(image, None, args.image, DigestCache(None)))
    return 0


def cmd_menu(args, settings: AppSettings) -> int:
    _source, catalog = _context(settings)
    if args.desktop_entries:
        sync_desktop_entries(Path(args.desktop_entries),
                             desktop_entries(catalog, settings.instrument, self_command()))
        return 0
    sys.stdout.write(openbox_pipe_menu(catalog, settings.instrument, self_command()))
    return 0


# -- main ------------------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="visa-app", description="Scientific apps as versioned containers.",
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = main.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="apps and versions")
    p.add_argument("--all", action="store_true", help="also apps for other instruments")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("info", help="an app's versions, images and digests")
    p.add_argument("app", metavar="NAME[@VERSION]")
    p.add_argument("--check", action="store_true", help="verify images and digests")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("run", help="run an app version")
    p.add_argument("--digest", help="refuse to run unless the image has this digest (reproduce uses it)")
    p.add_argument("app", metavar="NAME[@VERSION]")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("exec", help="run a command inside an app's image")
    p.add_argument("--digest", help="refuse to run unless the image has this digest")
    p.add_argument("app", metavar="NAME[@VERSION]")
    p.add_argument("command")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)
    p = sub.add_parser("kernel", help="(used by Jupyter) run an app's kernel inside its container")
    p.add_argument("app", metavar="NAME@VERSION")
    p.add_argument("-f", dest="connection_file", required=True)
    p.set_defaults(func=cmd_kernel)
    p = sub.add_parser("register", help="register your own image (SIF file or sandbox directory)")
    p.add_argument("image")
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--title")
    p.add_argument("--kind", choices=KINDS, default="command")
    p.add_argument("--kernel", choices=sorted(KERNEL_ARGV), help="the image ships a Jupyter kernel")
    p.set_defaults(func=cmd_register)
    p = sub.add_parser("unregister", help="forget one of your registered images")
    p.add_argument("app", metavar="NAME[@VERSION]")
    p.set_defaults(func=cmd_unregister)
    p = sub.add_parser("bundle", help="the pinned versions of a proposal cycle, to take home")
    p.add_argument("--cycle")
    p.add_argument("-o", "--output")
    p.add_argument("--references-only", action="store_true", help="manifest and run script, no images")
    p.set_defaults(func=cmd_bundle)
    p = sub.add_parser("records", help="your provenance records")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_records)
    p = sub.add_parser("reproduce", help="start the app versions of a provenance record")
    p.add_argument("record", help="a record file or id (visa-app records)")
    p.add_argument("--dry-run", action="store_true", help="check and show, start nothing")
    p.set_defaults(func=cmd_reproduce)
    p = sub.add_parser("digest", help="the digest of an image (for catalog entries)")
    p.add_argument("image")
    p.set_defaults(func=cmd_digest)
    p = sub.add_parser("menu", help="the desktop's app menu")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--openbox", action="store_true", help="an openbox pipe menu (default)")
    group.add_argument("--desktop-entries", metavar="DIR", help="write XDG desktop entries into DIR")
    p.set_defaults(func=cmd_menu)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "args", None) and args.args[:1] == ["--"]:
        args.args = args.args[1:]
    settings = AppSettings.from_environ()
    try:
        return args.func(args, settings)
    except (AppError, ImageError, SiteDataError, RuntimeUnavailable, BundleError, ProvenanceError, CliError,
            ValueError) as exc:
        print(f"visa-app: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # her home or the image storage: say which file, never a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"visa-app: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
