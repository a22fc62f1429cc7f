"""Minimal client for the Gust key-value store (Python 3, stdlib only).

Reads GUST_API and GUST_TOKEN from the environment at call time.
"""
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_SECONDS = 10


class KVError(Exception):
    def __init__(self, message, status=None, code=None, request_id=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id


def _key_path(key):
    if not isinstance(key, str):
        raise TypeError("KV key must be a str")
    if not 1 <= len(key.encode("utf-8")) <= 1024:
        raise ValueError("KV key must be 1..1024 bytes")
    # Same escaping as JavaScript's encodeURIComponent.
    return "/gust/v1/kv/" + urllib.parse.quote(key, safe="!'()*")


def _request(method, path, body=None, headers=None):
    api = os.environ.get("GUST_API")
    if not api:
        raise KVError("GUST_API is not set; cannot reach the Gust KV store", code="config")
    headers = dict(headers or {})
    if os.environ.get("GUST_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["GUST_TOKEN"]
    req = urllib.request.Request(api.rstrip("/") + path, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def _fail(status, body, what):
    try:
        err = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    code = err.get("code") or "http_%d" % status
    message = "Gust KV %s failed: %d %s" % (what, status, code)
    if err.get("message"):
        message += ": " + err["message"]
    raise KVError(message, status=status, code=code, request_id=err.get("request_id"))


def _version(headers):
    tag = re.sub(r'^W/|"', "", headers.get("ETag") or "")
    return int(tag) if tag.isdigit() else (tag or None)


def get_entry(key):
    """Return {"value": str, "version": ...} or None if the key is absent."""
    status, headers, body = _request("GET", _key_path(key))
    if status == 404:
        return None
    if status != 200:
        _fail(status, body, "GET " + key)
    return {"value": body.decode("utf-8"), "version": _version(headers)}


def get(key):
    entry = get_entry(key)
    return entry and entry["value"]


def get_json(key):
    value = get(key)
    return None if value is None else json.loads(value)


def put(key, value, if_absent=False, if_version=None, content_type="application/octet-stream"):
    """Return {"created": bool, "version": ...}, or {"conflict": True} on 412."""
    if if_absent and if_version is not None:
        raise ValueError("use either if_absent or if_version, not both")
    headers = {"Content-Type": content_type}
    if if_absent:
        headers["If-None-Match"] = "*"
    if if_version is not None:
        headers["If-Match"] = '"%s"' % if_version
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    status, res_headers, body = _request("PUT", _key_path(key), data, headers)
    if status == 412:
        return {"conflict": True}
    if status not in (200, 201):
        _fail(status, body, "PUT " + key)
    return {"created": status == 201, "version": _version(res_headers)}


def put_json(key, value, **opts):
    return put(key, json.dumps(value), content_type="application/json", **opts)


def delete(key):
    """Return True if deleted, False if the key was absent."""
    status, _, body = _request("DELETE", _key_path(key))
    if status == 404:
        return False
    if status not in (200, 204):
        _fail(status, body, "DELETE " + key)
    return True


def list_keys(prefix="", limit=None, after=None):
    """Return {"keys": [{"key", "version"}], "next": str or None}; pass next as after."""
    params = {"prefix": prefix}
    if limit is not None:
        params["limit"] = limit
    if after is not None:
        params["after"] = after
    status, _, body = _request("GET", "/gust/v1/kv?" + urllib.parse.urlencode(params))
    if status != 200:
        _fail(status, body, "LIST " + prefix)
    page = json.loads(body)
    return {"keys": page.get("keys", []), "next": page.get("next")}
