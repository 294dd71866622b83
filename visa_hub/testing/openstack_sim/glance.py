"""Glance v2: list and show images (read-only)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .base import ApiError, SimHandler, VersionHandler
from .state import isotime, new_uuid, utcnow

if TYPE_CHECKING:
    from .app import OpenStackSimulator

FILTERS = ("name", "status", "visibility", "owner", "disk_format", "container_format", "id", "os_distro")


def make_image(name: str, owner: str, image_id: str | None = None, min_disk: int = 0, min_ram: int = 0,
               visibility: str = "public", **properties: Any) -> dict[str, Any]:
    """An ``active`` qcow2 image body with optional custom properties."""
    image_id = image_id or new_uuid()
    now = isotime(utcnow())
    size = 20 * 1024 * 1024
    return {
        "id": image_id, "name": name, "status": "active", "visibility": visibility, "protected": False,
        "os_hidden": False, "disk_format": "qcow2", "container_format": "bare", "size": size,
        "virtual_size": 10 * 1024**3, "min_disk": min_disk, "min_ram": min_ram, "owner": owner,
        "checksum": hashlib.md5(image_id.encode(), usedforsecurity=False).hexdigest(),
        "os_hash_algo": "sha512", "os_hash_value": hashlib.sha512(image_id.encode()).hexdigest(),
        "tags": [], "created_at": now, "updated_at": now, "self": f"/v2/images/{image_id}",
        "file": f"/v2/images/{image_id}/file", "schema": "/v2/schemas/image", "stores": "file",
        **properties,
    }


class ImagesHandler(SimHandler):
    """``GET /image/v2/images`` with Glance's filters, ``limit``, ``marker`` and ``next``."""

    style = "glance"

    def get(self) -> None:
        images = [i for i in self.sim.state.images.values()
                  if i["visibility"] in ("public", "community", "shared") or i["owner"] == self.project_id]
        for key in FILTERS:
            value = self.query(key)
            if value is not None:
                if value.startswith("in:"):
                    wanted = value[3:].split(",")
                    images = [i for i in images if str(i.get(key)) in wanted]
                else:
                    images = [i for i in images if str(i.get(key)) == value]
        for tag in self.get_query_arguments("tag"):
            images = [i for i in images if tag in i["tags"]]
        images.sort(key=lambda i: (i["created_at"], i["id"]), reverse=True)
        marker = self.query("marker")
        if marker:
            ids = [i["id"] for i in images]
            if marker not in ids:
                raise ApiError(400, f"marker [{marker}] not found")
            images = images[ids.index(marker) + 1:]
        body: dict[str, Any] = {"first": "/v2/images", "schema": "/v2/schemas/images"}
        limit = int(self.query("limit") or 25)
        if len(images) > limit:
            images = images[:limit]
            body["next"] = f"/v2/images?marker={images[-1]['id']}&limit={limit}"
        body["images"] = images
        self.send_json(body)


class ImageHandler(SimHandler):
    """``GET /image/v2/images/{id}``."""

    style = "glance"

    def get(self, image_id: str) -> None:
        image = self.sim.state.images.get(image_id)
        if image is None:
            raise ApiError(404, f"No image found with ID {image_id}")
        self.send_json(image)


def _versions(sim: OpenStackSimulator) -> dict[str, Any]:
    return {"versions": [
        {"id": f"v2.{minor}", "status": "CURRENT" if minor == 16 else "SUPPORTED",
         "links": [{"rel": "self", "href": f"{sim.url}/image/v2/"}]}
        for minor in (16, 15, 9, 0)
    ]}


def routes() -> list[tuple[str, type[SimHandler], dict[str, Any]]]:
    return [
        ("/image", VersionHandler, {"document": _versions, "status": 300}),
        ("/image/versions", VersionHandler, {"document": _versions}),
        ("/image/v2/images", ImagesHandler, {}),
        ("/image/v2/images/{image_id}", ImageHandler, {}),
    ]
