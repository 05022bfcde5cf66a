"""How a cloud's keystoneauth1 Session and Adapters are made, and how a request fails.

``connection.Connection`` keeps one Session per cloud and one Adapter per
service; every request goes through ``Api.call``, which turns a failed status
into the pipeline's error (``response_error``, the status table in ``errors``).

The Session is made from what openstacksdk's config loader resolved for the
cloud and region (its auth plugin: password, token or application credential,
identity v2.0 or v3; verify/cacert/cert; per-service interface, service name
and endpoint override).  keystoneauth's own request log hashes
tokens and never logs the authentication body; our own log lines only ever
see ``CloudConfig.redacted()``.  Foreign errors become ``PipelineError`` here,
at the boundary.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import keystoneauth1.exceptions as ksa_exc
from keystoneauth1 import adapter as ksa_adapter
from keystoneauth1 import session as ksa_session
from openstack import exceptions as sdk_exc

from pipeline.core import errors
from pipeline.settings.clouds import CloudConfig

LOG = logging.getLogger(__name__)

USER_AGENT = "imagefleet"

# Seconds to connect, and to wait for each socket read, when clouds.yaml has no
# ``api_timeout``.  urllib3 also applies the connect timeout to each send of a
# request body, so a stalled upload ends after that long without progress.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0

def verify_option(cloud: CloudConfig) -> bool | str:
    """requests' ``verify``: False, True or the CA bundle path, as openstacksdk
    resolves ``verify``/``cacert`` (``CloudRegion.get_requests_verify_args``)."""
    verify, _cert = cloud.cloud_region().get_requests_verify_args()
    return verify


# The secret each common plugin needs; keystoneauth does not mark these
# required, so without one it fails late with a TypeError from the plugin.
_SECRET_OPTION = {
    "password": "password", "v2password": "password", "v3password": "password",
    "token": "token", "v2token": "token", "v3token": "token",
    "v3applicationcredential": "application_credential_secret",
    "v3totp": "passcode",
}


def missing_secret(auth_type: str, options: Mapping[str, Any]) -> str | None:
    """The secret option ``auth_type`` needs that ``options`` lacks, if any."""
    name = _SECRET_OPTION.get(auth_type)
    return name if name and not options.get(name) else None


def auth_plugin(cloud: CloudConfig):
    """The keystoneauth plugin openstacksdk's loader makes for ``cloud`` (offline).

    Every way the entry can be incomplete is a ``ConfigError`` naming the file
    and the key, so ``check-config`` refuses it before any work is done.
    """
    key = f"clouds.{cloud.name}.auth"
    auth_type = cloud.config.get("auth_type") or "password"
    # openstacksdk moves top-level options (OS_PASSWORD) into ``auth`` as it validates
    given = {**cloud.config, **cloud.auth}
    missing = [secret] if (secret := missing_secret(auth_type, given)) else []
    try:
        region = cloud.cloud_region(validate=True)
    except ksa_exc.NoMatchingPlugin as e:
        raise errors.ConfigError(f"unknown auth_type {auth_type!r}", file=cloud.path,
                                 key=f"clouds.{cloud.name}.auth_type") from e
    except ksa_exc.MissingRequiredOptions as e:
        missing = [o.dest for o in e.options] + missing
    except (ksa_exc.OptionError, TypeError, sdk_exc.ConfigException) as e:
        if not missing:
            detail = str(e).split(": ", 1)[-1] if isinstance(e, TypeError) else str(e)
            raise errors.ConfigError(f"incomplete auth for auth_type {auth_type} ({detail})",
                                     file=cloud.path, key=key) from e
    if missing:
        raise errors.ConfigError(f"missing {', '.join(missing)} for auth_type {auth_type}",
                                 file=cloud.path, key=key)
    return region.get_auth()


def request_timeouts(cloud: CloudConfig) -> tuple[float, float]:
    """requests' ``(connect, read)`` timeout for every call to ``cloud``.

    Each bounds one socket operation, not the whole call: a long transfer runs
    as long as bytes move, and a stalled one ends.
    """
    given = cloud.api_timeout
    return (given, given) if given else (CONNECT_TIMEOUT, READ_TIMEOUT)


def make_session(cloud: CloudConfig) -> ksa_session.Session:
    """The one keystoneauth1 Session for ``cloud``, every call under ``request_timeouts``;
    its auth plugin, TLS verification and client certificate are openstacksdk's."""
    plugin = auth_plugin(cloud)
    verify, cert = cloud.cloud_region().get_requests_verify_args()
    LOG.debug("%s: session with %s auth, region %s, interface %s",
              cloud.key, cloud.config.get("auth_type"), cloud.region_name, cloud.interface)
    session = ksa_session.Session(auth=plugin, verify=verify, cert=cert, app_name=USER_AGENT)
    # Session(timeout=) takes one number; request() hands ``timeout`` to requests
    # unchanged, and requests takes the (connect, read) pair.
    session.timeout = request_timeouts(cloud)
    return session


def adapter(session: ksa_session.Session, cloud: CloudConfig, service_type: str,
            **kwargs: Any) -> ksa_adapter.Adapter:
    """An Adapter for one service of ``cloud``, with openstacksdk's per-service settings:
    ``<service>_endpoint_override``, ``<service>_service_name``, ``<service>_interface``."""
    region = cloud.cloud_region()
    override = region.get_endpoint(service_type)
    if override and "endpoint_override" not in kwargs:
        kwargs["endpoint_override"] = override
    return ksa_adapter.Adapter(session, service_type=service_type,
                               service_name=region.get_service_name(service_type),
                               interface=region.get_interface(service_type),
                               region_name=cloud.region_name, **kwargs)


def has_service(session: ksa_session.Session, cloud: CloudConfig, service_type: str) -> bool:
    """Whether the catalog offers ``service_type`` at the cloud's region and interface."""
    with cloud_errors(cloud.key, "discovery"):
        try:
            return bool(session.get_endpoint(service_type=service_type,
                                             interface=cloud.interface,
                                             region_name=cloud.region_name))
        except ksa_exc.EndpointNotFound:
            return False


def error_message(body: Any, text: str = "") -> str:
    """The human part of an OpenStack error body (Glance, Nova, Keystone, Swift shapes)."""
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return body["message"]
        for value in body.values():
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
            if isinstance(value, str) and value:
                return value
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    # webob's plain-text pages start with the status line; the explanation follows.
    if len(lines) > 1 and lines[0][:3].isdigit():
        lines = lines[1:]
    return " ".join(lines)[:300]


def response_error(resp: Any, service: str, *, where: str | None = None,
                   step: str | None = None) -> errors.PipelineError:
    """The ``PipelineError`` for a failed HTTP response (status table + quota wording)."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    message = error_message(body, getattr(resp, "text", "") or "") or resp.reason or ""
    cause = f"{service} returned {resp.status_code}"
    if message:
        cause += f" ({message})"
    method = getattr(getattr(resp, "request", None), "method", None)
    if resp.status_code in (403, 409) and "quota" in message.lower():
        return errors.QuotaExceeded(cause, where=where, step=step)
    return errors.from_status(resp.status_code, cause, method=method, url=resp.url,
                              where=where, step=step)


class Api:
    """One service of one cloud: requests that raise the pipeline's errors."""

    service = "the cloud"
    default_step = "verify"

    def __init__(self, ad: ksa_adapter.Adapter, where: str):
        self.ad = ad
        self.where = where

    def call(self, method: str, url: str, *, ok: tuple[int, ...] = (), step: str | None = None,
             **kwargs: Any) -> Any:
        """The response; statuses in ``ok`` (404 on a delete, say) are not errors."""
        step = step or self.default_step
        with cloud_errors(self.where, step):
            resp = self.ad.request(url, method, raise_exc=False, **kwargs)
        if resp.status_code >= 400 and resp.status_code not in ok:
            raise response_error(resp, self.service, where=self.where, step=step)
        return resp

    def json(self, method: str, url: str, key: str, **kwargs: Any) -> Any:
        body = self.call(method, url, **kwargs).json()
        if not isinstance(body, dict) or key not in body:
            raise errors.CloudError(f"{self.service} answered {method} {url} without "
                                    f"{key!r}", where=self.where, step=kwargs.get("step"))
        return body[key]


def translate(exc: Exception, *, where: str | None = None,
              step: str | None = None) -> errors.PipelineError:
    """Map a keystoneauth1 exception onto the pipeline's error tree."""
    if isinstance(exc, ksa_exc.HttpError):
        resp = exc.response
        if resp is not None:
            err = response_error(resp, _service_of(exc), where=where, step=step)
        else:
            err = errors.from_status(exc.http_status or 500, exc.message or str(exc),
                                     where=where, step=step)
        if isinstance(err, errors.Unauthorized) and _is_auth_request(exc):
            err.cause = f"Keystone rejected the credentials ({exc.http_status})"
            err.step = "auth"
        return err
    if isinstance(exc, ksa_exc.ConnectionError) and timed_out(exc):
        return errors.TimedOut(f"no progress within the timeout ({_short(exc)})",
                               where=where, step=step)
    if isinstance(exc, ksa_exc.SSLError):
        return errors.CloudError(f"TLS failure: {_short(exc)}", where=where, step=step)
    if isinstance(exc, ksa_exc.ConnectionError):
        return errors.ConnectionFailed(f"connection failed: {_short(exc)}",
                                       where=where, step=step)
    if isinstance(exc, ksa_exc.EndpointNotFound | ksa_exc.CatalogException):
        return errors.EndpointNotFound(f"no endpoint: {_short(exc)}", where=where)
    if isinstance(exc, ksa_exc.DiscoveryFailure):
        return errors.EndpointNotFound(f"version discovery failed: {_short(exc)}",
                                       where=where)
    if isinstance(exc, ksa_exc.AuthorizationFailure):
        return errors.Unauthorized(f"authentication failed: {_short(exc)}",
                                   where=where, step="auth")
    return errors.CloudError(_short(exc), where=where, step=step)


@contextlib.contextmanager
def cloud_errors(where: str | None, step: str | None = None) -> Iterator[None]:
    """Re-raise keystoneauth1 exceptions as ``PipelineError`` (``raise ... from e``)."""
    try:
        yield
    except ksa_exc.ClientException as e:
        raise translate(e, where=where, step=step) from e
    except errors.PipelineError as e:
        e.at(where, step)
        raise


def timed_out(exc: BaseException) -> bool:
    """A socket timeout, however the HTTP stack wrapped it (read, connect or write)."""
    return isinstance(exc, ksa_exc.ConnectTimeout) or "timed out" in str(exc)


def _service_of(exc: ksa_exc.HttpError) -> str:
    if _is_auth_request(exc):
        return "Keystone"
    return "the cloud"


def _is_auth_request(exc: ksa_exc.HttpError) -> bool:
    url = getattr(exc, "url", "") or ""
    return "/tokens" in url or "/auth/" in url


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
