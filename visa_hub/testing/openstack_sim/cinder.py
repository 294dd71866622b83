"""Cinder v3: volumes (create, list with filters, show, update, delete), metadata, limits."""

from __future__ import annotations

import ast
import json
from typing import TYPE_CHECKING, Any

from .base import ApiError, SimHandler, VersionHandler
from .nova import validate_metadata
from .state import Volume, isotime

if TYPE_CHECKING:
    from .app import OpenStackSimulator

MIN_VERSION, MAX_VERSION = "3.0", "3.71"
DELETE_REFUSED = ("Invalid volume: Volume status must be available or error or error_restoring or "
                  "error_extending or error_managing and must not be migrating, attached, belong to a group, "
                  "have snapshots, awaiting a transfer, or be disassociated from snapshots after volume "
                  "transfer.")


def _version(sim: OpenStackSimulator) -> dict[str, Any]:
    return {"id": "v3.0", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
            "updated": "2023-08-31T00:00:00Z",
            "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                      {"rel": "self", "href": f"{sim.url}/volume/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.volume+json;version=3"}]}


def versions_document(sim: OpenStackSimulator) -> dict[str, Any]:
    return {"versions": [_version(sim)]}


def parse_metadata_filter(text: str) -> dict[str, str]:
    """Cinder reads ``?metadata=`` with ``ast.literal_eval``; JSON works too."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ApiError(400, f"Invalid filter metadata: {text}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"Invalid filter metadata: {text}")
    return {str(k): str(v) for k, v in value.items()}


class CinderHandler(SimHandler):
    style = "nova"  # Cinder renders faults like Nova: {"itemNotFound": {"code": .., "message": ..}}
    microversion_service = "volume"
    min_version, max_version = MIN_VERSION, MAX_VERSION

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished:
            return
        project_id = self.path_kwargs.get("project_id")
        if project_id is not None and project_id != self.project_id:
            raise ApiError(400, "Malformed request url")

    def base(self, project_id: str) -> str:
        return f"{self.sim.url}/volume/v3/{project_id}"

    def find_volume(self, volume_id: str) -> Volume:
        volume = self.sim.state.volumes.get(volume_id)
        if volume is None or volume.project_id != self.project_id:
            raise ApiError(404, f"Volume {volume_id} could not be found.")
        return volume

    def volume_view(self, v: Volume, detail: bool = True) -> dict[str, Any]:
        links = [{"rel": "self", "href": f"{self.base(v.project_id)}/volumes/{v.id}"},
                 {"rel": "bookmark", "href": f"{self.sim.url}/volume/{v.project_id}/volumes/{v.id}"}]
        body: dict[str, Any] = {"id": v.id, "name": v.name, "links": links}
        if not detail:
            return body
        body.update({
            "status": v.status, "size": v.size, "availability_zone": v.availability_zone,
            "created_at": isotime(v.created_at, micro=True, zulu=False),
            "updated_at": isotime(v.updated_at, micro=True, zulu=False),
            "attachments": [{"server_id": a.server_id, "attachment_id": a.id, "volume_id": v.id,
                             "attached_at": isotime(a.attached_at, micro=True, zulu=False),
                             "host_name": None, "device": a.device, "id": v.id} for a in v.attachments],
            "bootable": str(v.bootable).lower(), "encrypted": False, "description": v.description,
            "volume_type": v.volume_type, "snapshot_id": None, "source_volid": None,
            "metadata": dict(v.metadata), "user_id": v.user_id, "replication_status": None,
            "consistencygroup_id": None, "multiattach": False,
        })
        if v.image_id:
            body["volume_image_metadata"] = {"image_id": v.image_id}
        for version, extra in (("3.13", {"group_id": None}), ("3.21", {"provider_id": None}),
                               ("3.63", {"volume_type_id": "00000000-0000-0000-0000-00000000de7a"}),
                               ("3.64", {"encryption_key_id": None}), ("3.65", {"consumes_quota": True})):
            if self.version_at_least(version):
                body.update(extra)
        return body


class VolumesHandler(CinderHandler):
    """``GET /volumes[/detail]`` with filters (``name``, ``status``, ``metadata``), ``POST /volumes``."""

    def initialize(self, sim: OpenStackSimulator, template: str, detail: bool = False) -> None:
        super().initialize(sim, template)
        self.detail = detail

    def get(self, project_id: str) -> None:
        volumes = [v for v in self.sim.state.volumes.values() if v.project_id == self.project_id]
        for key in ("name", "status", "bootable", "availability_zone"):
            value = self.query(key)
            if value is not None:
                volumes = [v for v in volumes if str(self.volume_view(v)[key]).lower() == value.lower()]
        if self.query("metadata"):
            wanted = parse_metadata_filter(self.query("metadata") or "{}")
            volumes = [v for v in volumes if all(v.metadata.get(k) == val for k, val in wanted.items())]
        volumes.sort(key=lambda v: (v.created_at, v.id), reverse=True)
        marker = self.query("marker")
        if marker:
            ids = [v.id for v in volumes]
            if marker not in ids:
                raise ApiError(404, f"Marker {marker} could not be found.")
            volumes = volumes[ids.index(marker) + 1:]
        body: dict[str, Any] = {}
        limit = self.query("limit")
        if limit and int(limit) < len(volumes):
            volumes = volumes[: int(limit)]
            path = "volumes/detail" if self.detail else "volumes"
            body["volumes_links"] = [{"rel": "next", "href": f"{self.base(project_id)}/{path}?limit={limit}"
                                                             f"&marker={volumes[-1].id}"}]
        body["volumes"] = [self.volume_view(v, self.detail) for v in volumes]
        if self.query("with_count") and self.version_at_least("3.45"):
            body["count"] = len(body["volumes"])
        self.send_json(body)

    def post(self, project_id: str) -> None:
        body = self.json_body("volume")
        try:
            size = int(body.get("size"))
        except (TypeError, ValueError):
            raise ApiError(400, f"Invalid input for field/attribute size. Value: {body.get('size')}.") from None
        if size < 1:
            raise ApiError(400, f"Invalid input for field/attribute size. Value: {size}. {size} is less than "
                                "the minimum of 1")
        image_id = body.get("imageRef")
        if image_id and image_id not in self.sim.state.images:
            raise ApiError(400, "Invalid image identifier or unable to access requested image.")
        volume = self.sim.compute.create_volume(
            self.project_id, self.token.user.id, size, name=body.get("name"),
            description=body.get("description"), metadata=validate_metadata(body.get("metadata") or {}),
            image_id=image_id)
        if body.get("availability_zone"):
            volume.availability_zone = body["availability_zone"]
        self.send_json({"volume": self.volume_view(volume)}, 202)


class VolumeHandler(CinderHandler):
    """``GET``/``PUT``/``DELETE /volumes/{id}``."""

    def get(self, project_id: str, volume_id: str) -> None:
        self.send_json({"volume": self.volume_view(self.find_volume(volume_id))})

    def put(self, project_id: str, volume_id: str) -> None:
        volume = self.find_volume(volume_id)
        body = self.json_body("volume")
        for key in ("name", "description"):
            if key in body:
                setattr(volume, key, body[key])
        if "metadata" in body:
            volume.metadata = validate_metadata(body["metadata"])
        volume.touch()
        self.send_json({"volume": self.volume_view(volume)})

    def delete(self, project_id: str, volume_id: str) -> None:
        volume = self.find_volume(volume_id)
        if volume.status not in ("available", "error", "error_restoring", "error_extending",
                                 "error_managing") or volume.attachments:
            raise ApiError(400, DELETE_REFUSED)
        self.sim.compute.delete_volume(volume)
        self.no_content(202)


class VolumeMetadataHandler(CinderHandler):
    """``/volumes/{id}/metadata``: GET, POST (merge), PUT (replace)."""

    def get(self, project_id: str, volume_id: str) -> None:
        self.send_json({"metadata": dict(self.find_volume(volume_id).metadata)})

    def post(self, project_id: str, volume_id: str) -> None:
        self._update(volume_id, replace=False)

    def put(self, project_id: str, volume_id: str) -> None:
        self._update(volume_id, replace=True)

    def _update(self, volume_id: str, replace: bool) -> None:
        volume = self.find_volume(volume_id)
        body = self.json_body()
        metadata = validate_metadata(body.get("metadata") if isinstance(body, dict) else None)
        volume.metadata = metadata if replace else {**volume.metadata, **metadata}
        volume.touch()
        self.send_json({"metadata": dict(volume.metadata)})


class VolumeLimitsHandler(CinderHandler):
    def get(self, project_id: str) -> None:
        quota = self.sim.state.quota(self.project_id)
        used = self.sim.state.volume_usage(self.project_id)
        self.send_json({"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": quota.volumes, "maxTotalVolumeGigabytes": quota.gigabytes,
            "maxTotalSnapshots": 10, "maxTotalBackups": 10, "maxTotalBackupGigabytes": 1000,
            "totalVolumesUsed": used["volumes"], "totalGigabytesUsed": used["gigabytes"],
            "totalSnapshotsUsed": 0, "totalBackupsUsed": 0, "totalBackupGigabytesUsed": 0}}})


def routes() -> list[tuple[str, type[SimHandler], dict[str, Any]]]:
    base = "/volume/v3/{project_id}"
    return [
        ("/volume", VersionHandler, {"document": versions_document, "status": 300}),
        ("/volume/v3", VersionHandler, {"document": versions_document}),
        (f"{base}/volumes", VolumesHandler, {}),
        (f"{base}/volumes/detail", VolumesHandler, {"detail": True}),
        (f"{base}/volumes/{{volume_id}}", VolumeHandler, {}),
        (f"{base}/volumes/{{volume_id}}/metadata", VolumeMetadataHandler, {}),
        (f"{base}/limits", VolumeLimitsHandler, {}),
    ]
