"""Read a Singularity Image Format (SIF) file: find its root file system partition. Pure Python, no siftool.

A SIF file is a global header, a table of descriptors and their data objects. Apptainer runs the primary
system partition, a squashfs file system. Its digest (sha256 of the partition's bytes) identifies an image's
content: unlike the SIF file it does not change when the same image is wrapped again (the header holds a random
id and timestamps). Layout as in Sylabs' ``sif`` package (format version 01, little-endian, no padding).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"SIF_MAGIC\0"
_HEADER = struct.Struct("<32s10s3s3s16sqqqqqqqq")  # launch, magic, version, arch, uuid, ctime, mtime,
#                                                    dfree, dtotal, descroff, descrlen, dataoff, datalen
_DESCRIPTOR = struct.Struct("<i?IIIqqqqqqq128s384s")  # type, used, id, group, link, offset, size, padded size,
#                                                      ctime, mtime, uid, gid, name, extra
DATA_PARTITION = 0x4004
FS_SQUASHFS = 1
PART_PRIMARY_SYSTEM = 2
SQUASHFS_MAGIC = b"hsqs"
ARCHITECTURES = {b"01": "386", b"02": "amd64", b"03": "arm", b"04": "arm64", b"05": "ppc64", b"06": "ppc64le",
                 b"07": "mips", b"08": "mipsle", b"09": "mips64", b"10": "mips64le", b"11": "s390x", b"12": "riscv64"}


class SifError(ValueError):
    """The file is not a usable SIF image; the message says what is wrong (the caller names the image)."""


@dataclass(frozen=True)
class Partition:
    """The squashfs root file system of a SIF file: where it starts and how long it is."""

    offset: int
    size: int
    arch: str


def read_partition(path: str | Path) -> Partition:
    """The primary system partition of the SIF file at ``path`` (raises :class:`SifError` or ``OSError``)."""
    path = Path(path)
    with path.open("rb") as handle:
        file_size = handle.seek(0, 2)
        handle.seek(0)
        raw = handle.read(_HEADER.size)
        if len(raw) < _HEADER.size:
            raise SifError(f"not a SIF file: only {file_size} bytes long")
        (_launch, magic, _version, _arch, _uuid, _ctime, _mtime, _dfree, dtotal, descroff, descrlen, _dataoff,
         _datalen) = _HEADER.unpack(raw)
        if magic != MAGIC:
            raise SifError("not a SIF file (no SIF_MAGIC header)")
        if dtotal <= 0 or descrlen < dtotal * _DESCRIPTOR.size or descroff + descrlen > file_size:
            raise SifError("damaged SIF file: its descriptor table lies outside the file (truncated?)")
        handle.seek(descroff)
        table = handle.read(dtotal * _DESCRIPTOR.size)
        partitions = []
        for index in range(dtotal):
            fields = _DESCRIPTOR.unpack_from(table, index * _DESCRIPTOR.size)
            datatype, used, offset, size, extra = fields[0], fields[1], fields[5], fields[6], fields[13]
            if not used or datatype != DATA_PARTITION:
                continue
            fstype, parttype, arch = struct.unpack_from("<ii3s", extra)
            if fstype == FS_SQUASHFS and parttype == PART_PRIMARY_SYSTEM:
                partitions.append(Partition(offset, size, ARCHITECTURES.get(arch.rstrip(b"\0"), "unknown")))
        if not partitions:
            raise SifError("SIF file without a squashfs root file system partition")
        partition = partitions[0]
        if partition.offset + partition.size > file_size:
            raise SifError(
                f"damaged SIF file: its file system ends at byte {partition.offset + partition.size}, "
                f"the file has {file_size} (truncated?)"
            )
        handle.seek(partition.offset)
        if handle.read(4) != SQUASHFS_MAGIC:
            raise SifError("damaged SIF file: no squashfs file system where its partition should start")
        return partition


def partition_digest(path: str | Path, partition: Partition, chunk: int = 1 << 20) -> str:
    """``sha256:<hex>`` of the partition's bytes (what ``siftool dump 1 FILE | sha256sum`` gives)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        handle.seek(partition.offset)
        left = partition.size
        while left > 0:
            data = handle.read(min(chunk, left))
            if not data:
                raise SifError("damaged SIF file: it ends inside its file system (truncated?)")
            digest.update(data)
            left -= len(data)
    return f"sha256:{digest.hexdigest()}"
