"""The benchmark's Python handlers: the same logic as handler.js."""
import base64
import datetime
import json
import uuid


def _json(status, body):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def hello(event, context):
    """GET /hello"""
    return _json(200, {"message": "hello"})


def create_user(event, context):
    """POST /users {"email": "...", "name": "..."} -> 201 with the user, or 400."""
    raw = event.get("body") or "{}"
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode("utf-8")
    try:
        data = json.loads(raw)
    except ValueError:
        return _json(400, {"message": "Request body must be valid JSON"})
    email = data.get("email") if isinstance(data, dict) else None
    email = email.strip() if isinstance(email, str) else ""
    if not email:
        return _json(400, {"message": "Email is required"})
    name = data.get("name")
    return _json(201, {
        "id": str(uuid.uuid4()),
        "email": email,
        "name": name if isinstance(name, str) else None,
        "createdAt": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    })
