"""An app's image on disk — a SIF file or an unpacked sandbox directory — checked before anything runs it.

Every problem becomes an :class:`ImageError` whose message names the app version and the image path and says
what to do, so that the launcher card, the kernel and ``visa-app`` show the same clear sentence.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .sif import Partition, SifError, partition_digest, read_partition

SIF, SANDBOX = "sif", "sandbox"


class ImageError(RuntimeError):
    """An image is missing, broken or not the one the catalog names."""


@dataclass(frozen=True)
class ImageFile:
    """A checked image: its kind, path and (for SIF) the partition the runtimes mount."""

    path: Path
    kind: str  # SIF or SANDBOX
    partition: Partition | None = None


def open_image(path: str | Path, label: str) -> ImageFile:
    """Check that ``path`` is a usable SIF file or sandbox directory; ``label`` names it in errors."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ImageError(f"{label}: image {path} does not exist (removed, or the storage is not mounted?)") from None
    except OSError as exc:
        raise ImageError(f"{label}: image {path} cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        if not (path / "bin").exists() and not (path / "usr").exists() and not (path / ".singularity.d").exists():
            raise ImageError(f"{label}: {path} is a directory but not an image sandbox (no /usr, /bin or "
                             ".singularity.d inside)")
        return ImageFile(path, SANDBOX)
    try:
        return ImageFile(path, SIF, read_partition(path))
    except SifError as exc:
        raise ImageError(f"{label}: image {path} is unusable: {exc}") from None
    except OSError as exc:
        raise ImageError(f"{label}: image {path} cannot be read ({exc.strerror or exc})") from None


def sandbox_digest(root: Path) -> str:
    """``sha256:<hex>`` over a directory tree: every path, type, mode, link target and file content, in order."""
    digest = hashlib.sha256()
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = Path(directory, name)
            info = full.lstat()
            relative = full.relative_to(root).as_posix()
            digest.update(f"{relative}\0{stat.S_IFMT(info.st_mode)}\0{stat.S_IMODE(info.st_mode):o}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.readlink(full).encode() + b"\0")
            elif stat.S_ISREG(info.st_mode):
                with full.open("rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(block)
                digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"


class DigestCache:
    """Digests of SIF files already hashed, keyed by device, inode, size and mtime (a JSON file per user).

    Hashing a multi-gigabyte image takes seconds; an unchanged file is not hashed again.
    """

    def __init__(self, path: Path | None):
        self.path = path

    def _load(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _key(path: Path) -> str:
        info = path.stat()
        return f"{path.resolve()}|{info.st_dev}|{info.st_ino}|{info.st_size}|{info.st_mtime_ns}"

    def digest(self, image: ImageFile) -> str:
        if image.kind == SANDBOX:
            return sandbox_digest(image.path)
        assert image.partition is not None
        key = self._key(image.path)
        cached = self._load()
        if key in cached:
            return cached[key]
        value = partition_digest(image.path, image.partition)
        if self.path is not None:
            cached = {k: v for k, v in cached.items() if not k.startswith(f"{image.path.resolve()}|")}
            cached[key] = value
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
                temporary.write_text(json.dumps(cached, indent=0, sort_keys=True))
                temporary.replace(self.path)
            except OSError:
                pass  # a cache we cannot write only costs time
        return value


def verify_image(image: ImageFile, expected: str | None, label: str, cache: DigestCache) -> str:
    """The image's digest; an :class:`ImageError` when the catalog expects another one."""
    try:
        actual = cache.digest(image)
    except (SifError, OSError) as exc:
        raise ImageError(f"{label}: image {image.path} cannot be read to check its digest: {exc}") from None
    if expected and actual != expected:
        raise ImageError(
            f"{label}: image {image.path} does not match its catalog entry (digest {actual}, expected "
            f"{expected}). It was changed or damaged after publication: ask the app's maintainers to republish "
            "it, or launch another version."
        )
    return actual
