"""Build small, real SIF app images from Debian packages, reproducibly, without apptainer.

For tests and the demo: a recipe (``containers/test-images/*.yaml``) names Debian packages installed on this
machine (their files and those of their dependencies form the root file system) and adds a few files of its own
(the app's code, a runscript, an environment). The build is

    rootfs → SOURCE_DATE_EPOCH=0 mksquashfs -noappend -all-root → siftool new + siftool add (primary system
    partition, squashfs, amd64)

so the same recipe gives the same squashfs bytes, hence the same digest, on every build. The root file system of
a package set is assembled once per cache directory and hard-linked into each image.

    python -m visa_hub.testing.app_images RECIPE.yaml OUT.sif [--cache DIR]   # prints the digest
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from visa_hub.apps.sif import partition_digest, read_partition

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "containers" / "test-images"
TOOLS = ("mksquashfs", "siftool", "dpkg-query")
# Never copied: the package manager and what only it and the host need.
EXCLUDED_PACKAGES = {
    "dpkg", "perl-base", "debconf", "tar", "coreutils", "gdb", "python3-pydevd", "python3-debugpy",
    "python3-jedi", "python3-setuptools", "tzdata", "openssl", "python3-pkg-resources", "libglib2.0-0",
    "python3-coverage", "media-types", "ca-certificates", "libc-bin", "bash", "util-linux", "sensible-utils",
}
SKIPPED_PREFIXES = ("/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/locale", "/usr/share/lintian",
                    "/usr/share/bug", "/usr/share/doc-base", "/usr/share/gdb", "/etc/")
USRMERGE = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
MOUNT_POINTS = ("proc", "sys", "dev", "tmp", "home", "root", "run", "mnt", "opt", "var/tmp", "srv")
ETC = {
    "passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n",
    "resolv.conf": "",
    "ld.so.conf": "/usr/local/lib\n/usr/lib/x86_64-linux-gnu\n",
    "os-release": "NAME=visa-hub test image\nID=visa-test\n",
}


class BuildError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if not shutil.which(tool)]


@dataclass
class Recipe:
    name: str
    version: str
    packages: list[str]
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # path → (text, mode)
    runscript: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        path = Path(path)
        data = yaml.safe_load(path.read_text())
        files = {}
        for entry in data.get("files", []):
            files[entry["path"]] = (entry["text"], int(str(entry.get("mode", "0644")), 8))
        return cls(name=data["name"], version=str(data["version"]), packages=list(data["packages"]),
                   files=files, runscript=data.get("runscript", ""), environment=data.get("environment", {}),
                   labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()})


# -- the package closure ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _installed() -> dict[str, tuple[str, str]]:
    """Every installed package: name → (depends, version), from one dpkg-query call."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Abbrev}\t${Depends}, ${Pre-Depends}"
                             "\t${Version}\n"], capture_output=True, text=True, check=True)
    packages = {}
    for line in result.stdout.splitlines():
        name, status, depends, version = line.split("\t")
        if status.startswith("ii"):
            packages[name] = (depends, version)
    return packages


def _query(package: str) -> tuple[str, str] | None:
    """(depends, version) of an installed package, or None."""
    return _installed().get(package)


def package_closure(packages: list[str]) -> dict[str, str]:
    """The installed packages ``packages`` need (first installed alternative), name → version."""
    return dict(_closure(tuple(packages)))


@functools.lru_cache(maxsize=16)
def _closure(packages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    chosen: dict[str, str] = {}
    todo = list(packages)
    while todo:
        package = todo.pop()
        if package in chosen or package in EXCLUDED_PACKAGES:
            continue
        info = _query(package)
        if info is None:
            if package in packages:
                raise BuildError(f"Debian package {package} is not installed here (scripts/install-apps.sh)")
            continue
        chosen[package] = info[1]
        for group in info[0].split(","):
            for alternative in group.split("|"):
                name = re.split(r"[ (:]", alternative.strip())[0]
                if name and _query(name):
                    todo.append(name)
                    break
    return tuple(sorted(chosen.items()))


def _package_files(package: str) -> list[str]:
    result = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if line.startswith("/")]


def _copy_into(root: Path, path: str) -> None:
    source = Path(path)
    if path.startswith(SKIPPED_PREFIXES) or "__pycache__" in path:
        return
    if not source.is_symlink() and source.is_dir():
        return  # directories are made as files need them
    if not source.exists() and not source.is_symlink():
        return
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        return
    if source.is_symlink():
        target.symlink_to(os.readlink(source))
    else:
        shutil.copyfile(source, target)
        target.chmod(0o755 if source.stat().st_mode & 0o111 else 0o644)


def build_base(packages: list[str], cache: Path) -> Path:
    """The root file system of a package set (cached by the packages' names and versions)."""
    closure = package_closure(packages)
    key = hashlib.sha256(json.dumps(closure).encode()).hexdigest()[:16]
    base = cache / f"base-{key}"
    if base.exists():
        return base
    partial = cache / f"base-{key}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, target in USRMERGE.items():
        (partial / target).mkdir(parents=True, exist_ok=True)
        (partial / name).symlink_to(target)
    for package in closure:
        for path in _package_files(package):
            _copy_into(partial, path)
    busybox = partial / "usr/bin/busybox"
    if busybox.exists():
        applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in sorted(applets):
            link = partial / "usr/bin" / applet
            if not link.exists() and not link.is_symlink() and applet not in ("busybox", "linuxrc"):
                link.symlink_to("busybox")
    for point in MOUNT_POINTS:
        (partial / point).mkdir(parents=True, exist_ok=True)
    etc = partial / "etc"
    etc.mkdir(exist_ok=True)
    for name, text in ETC.items():
        (etc / name).write_text(text)
    _normalise(partial)
    (cache / "packages").mkdir(parents=True, exist_ok=True)
    (cache / "packages" / f"{key}.json").write_text(json.dumps(closure, indent=1))
    partial.rename(base)
    return base


def _normalise(root: Path) -> None:
    """Modes that do not depend on the build machine's umask or checkout."""
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(0o1777 if name == "tmp" else 0o755)
        for name in filenames:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & 0o111 else 0o644)


def _write(root: Path, path: str, text: str, mode: int) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()  # never write through a hard link into the shared base
    target.write_text(text)
    target.chmod(mode)


def assemble(recipe: Recipe, cache: Path, rootfs: Path) -> None:
    """The image's root file system: the packages' base, hard-linked, plus the recipe's own files."""
    base = build_base(recipe.packages, cache)
    shutil.rmtree(rootfs, ignore_errors=True)
    shutil.copytree(base, rootfs, symlinks=True, copy_function=os.link)
    for path, (text, mode) in sorted(recipe.files.items()):
        _write(rootfs, path, text, mode)
    labels = {"org.label-schema.name": recipe.name, "org.label-schema.version": recipe.version, **recipe.labels}
    meta = rootfs / ".singularity.d"
    (meta / "env").mkdir(parents=True, exist_ok=True)
    (meta / "actions").mkdir(exist_ok=True)
    _write(rootfs, "/.singularity.d/labels.json", json.dumps(labels, indent=1, sort_keys=True) + "\n", 0o644)
    environment = "".join(f"export {k}={_quote(v)}\n" for k, v in sorted(recipe.environment.items()))
    _write(rootfs, "/.singularity.d/env/90-environment.sh", "#!/bin/sh\n" + environment, 0o755)
    runscript = recipe.runscript or '#!/bin/sh\nexec /bin/sh "$@"\n'
    _write(rootfs, "/.singularity.d/runscript", runscript, 0o755)
    for name in ("exec", "run", "shell"):
        action = {"exec": 'exec "$@"', "run": 'exec /.singularity.d/runscript "$@"', "shell": "exec /bin/sh"}[name]
        _write(rootfs, f"/.singularity.d/actions/{name}",
               "#!/bin/sh\nfor f in /.singularity.d/env/*.sh; do . \"$f\"; done\n" + action + "\n", 0o755)
    (rootfs / ".singularity.d" / "env").chmod(0o755)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def squash(rootfs: Path, output: Path) -> None:
    """``SOURCE_DATE_EPOCH=0 mksquashfs ROOTFS OUT -noappend -all-root``: same tree, same bytes (zstd: builds fast)."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}
    result = subprocess.run(["mksquashfs", str(rootfs), str(output), "-noappend", "-all-root", "-no-xattrs",
                             "-comp", "zstd", "-Xcompression-level", "3", "-quiet", "-no-progress"],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise BuildError(f"mksquashfs failed: {result.stderr.strip()}")


def wrap_sif(squashfs: Path, sif: Path) -> None:
    """A real SIF file holding ``squashfs`` as its primary system partition (amd64)."""
    sif.unlink(missing_ok=True)
    for argv in (["siftool", "new", str(sif)],
                 ["siftool", "add", str(sif), str(squashfs), "--datatype", "4", "--parttype", "2", "--partfs", "1",
                  "--partarch", "2"]):
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()}")


def build_image(recipe: Recipe | str | Path, output: Path, cache: Path) -> str:
    """Build ``recipe`` into the SIF file ``output``; returns the digest (sha256 of the squashfs partition)."""
    if not isinstance(recipe, Recipe):
        recipe = Recipe.load(recipe)
    missing = missing_tools()
    if missing:
        raise BuildError(f"missing tools: {', '.join(missing)} (scripts/install-apps.sh installs them)")
    output.parent.mkdir(parents=True, exist_ok=True)
    work = cache / f"work-{recipe.name}-{recipe.version}-{os.getpid()}"
    try:
        assemble(recipe, cache, work / "rootfs")
        squash(work / "rootfs", work / "root.squashfs")
        wrap_sif(work / "root.squashfs", output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return partition_digest(output, read_partition(output))


def build_sandbox(recipe: Recipe | str | Path, output: Path, cache: Path) -> Path:
    """The same image as an unpacked sandbox directory (as CVMFS delivers images)."""
    if not isinstance(recipe, Recipe):
        recipe = Recipe.load(recipe)
    work = output.with_name(output.name + ".partial")
    assemble(recipe, cache, work)
    for directory, _dirs, files in os.walk(work):  # its own files: not hard links into the shared base
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink() and path.stat().st_nlink > 1:
                data, mode = path.read_bytes(), stat.S_IMODE(path.stat().st_mode)
                path.unlink()
                path.write_bytes(data)
                path.chmod(mode)
    shutil.rmtree(output, ignore_errors=True)
    work.rename(output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="a containers/test-images/*.yaml recipe")
    parser.add_argument("output", type=Path, help="the SIF file to write")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "visa-app-images")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        digest = build_image(args.recipe, args.output, args.cache)
    except BuildError as exc:
        print(f"app_images: {exc}", file=sys.stderr)
        return 1
    print(digest)
    print(f"built {args.output} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
