"""Immutable revisions: an image reference that can change under the same name (no tag, `latest`)
would make a revision unreproducible, so the `immutable` policy rejects it."""

from __future__ import annotations

import re

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_problem(image: str, policy: str) -> str | None:
    if policy == "off":
        return None
    pinned = bool(_DIGEST.search(image))
    if policy == "digest":
        return (
            None
            if pinned
            else f"image {image!r} must be pinned by digest (name@sha256:...) under immutable.images: digest"
        )
    if pinned:
        return None
    # The tag follows the last ':' after the last '/', so a registry port is not taken for a tag.
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"image {image!r} has no tag; pin a version (name:1.2.3) or a digest (name@sha256:...)"
    if name.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the mutable tag 'latest'; pin a version or a digest"
    return None
