"""Where the local cloud knowingly differs from upstream OpenStack, and why.

Each key is a conformance check (a test function's name); the check is a
strict xfail on the local cloud, so fixing the local cloud turns it into a
failure until its row is removed here and from docs/upstream.md, where the
same table is documented (a test keeps the two in step).
"""

from __future__ import annotations

DIFFERENCES: dict[str, str] = {
    "test_error_body_follows_accept": (
        "Glance (webob) answers errors as text/html unless the request accepts "
        "application/json; the local cloud always answers JSON, so a client that "
        "can only parse JSON error bodies passes there and not upstream"),
    "test_upload_must_match_disk_format": (
        "upstream Glance answers a disk_format mismatch with 415 and leaves the "
        "image queued for another upload; the local cloud answers 400 and kills "
        "the image"),
    "test_raw_takes_any_bytes": (
        "upstream accepts any bytes as raw (a qcow2 declared raw only logs a "
        "warning); the local cloud's format check refuses raw data that carries "
        "a qcow2/VHD/VMDK signature"),
    "test_slo_manifest_get_raw": (
        "the local Swift ignores format=raw on multipart-manifest=get: it returns "
        "the listing form (name/bytes/hash), not the manifest as PUT "
        "(path/etag/size_bytes)"),
    "test_temp_url_get": (
        "the local Swift has no tempurl middleware: a signed GET is refused 401"),
    "test_swift_info_advertises_tempurl": (
        "the local Swift has no tempurl middleware: no /info 'tempurl' key and no "
        "temp URL GETs, which upstream web-download and http task imports rely on"),
    "test_web_download_from_temp_url": (
        "the local cloud's Glance offers glance-direct only (its personality "
        "schema has no web-download flag) and its Swift serves no temp URLs"),
    "test_web_download_inflates_gzip": (
        "the local cloud's Glance offers glance-direct only, so its image_decompression "
        "plugin (image_import.decompress) is reached by glance-direct alone"),
    "test_task_import_from_http_url": (
        "the local cloud's import task reads 'container/object' from its own "
        "Swift (Rackspace's Cloud Images dialect); upstream Glance's task import "
        "takes only an http(s) URL, e.g. a Swift temp URL"),
    "test_task_import_refuses_swift_path": (
        "the same dialect the other way round: upstream fails a task whose "
        "import_from is 'container/object'; the local cloud imports it"),
    "test_tasks_api_is_admin_only": (
        "upstream's tasks API is admin-only (tasks_api_access); the local cloud "
        "has one user, who may create tasks wherever the personality allows them"),
    "test_zero_disk_flavor_needs_a_volume": (
        "the local cloud's flavors are fixed (m1.*, each with a disk) and it has no "
        "flavor API to make one; upstream's admin makes a 0 GiB flavor beside them, which "
        "a member may boot only volume-backed (403)"),
}
