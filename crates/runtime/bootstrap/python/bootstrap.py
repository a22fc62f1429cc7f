"""Gust Python runtime bootstrap.

A stdlib-only implementation of the AWS Lambda Runtime API client loop
(API version 2018-06-01), modelled on awslambdaric. Python 3.8+.

Gust extension: with GUST_PREWARM=1 the process first long-polls
GET /2018-06-01/runtime/gust/specialize, which answers
{"handler": "...", "taskRoot": "/abs/dir", "env": {"K": "V"}}; the env is
applied, the process chdirs to taskRoot (and puts it first on sys.path), and
only then the handler is imported.
"""

import os
import sys

# Modules the bootstrap itself needs are imported up front (before the
# specialize request when prewarmed).
import importlib
import json
import logging
import socket
import time
from urllib.parse import quote as _quote

_PREWARM = os.environ.get("GUST_PREWARM") == "1"

if _PREWARM:
    import traceback  # noqa: F401  (pre-paid; otherwise imported on first error)

_API_VERSION = "/2018-06-01"
_NEXT_PATH = _API_VERSION + "/runtime/invocation/next"
_INVOCATION_PATH = _API_VERSION + "/runtime/invocation/"
_INIT_ERROR_PATH = _API_VERSION + "/runtime/init/error"
_SPECIALIZE_PATH = _API_VERSION + "/runtime/gust/specialize"
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_DEFAULT_DEADLINE_MS = 15 * 60 * 1000
_BOOTSTRAP_FILE = os.path.abspath(__file__)

_GLOBAL_AWS_REQUEST_ID = None


def _traceback():
    import traceback

    return traceback


# ---------------------------------------------------------------------------
# Runtime API client: one persistent keep-alive connection, HTTP/1.1 written
# and parsed here (http.client costs more per request than the rest of an
# invocation). Gust also serves the API on a Unix socket
# (GUST_RUNTIME_API_SOCKET), which costs less than TCP over loopback.
# ---------------------------------------------------------------------------


class _Headers(dict):
    """Response headers, names lower-cased; get() takes any case."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class _Lost(Exception):
    """The connection ended; `answered` tells whether any of the answer came."""

    def __init__(self, answered):
        Exception.__init__(self, "the Runtime API connection closed")
        self.answered = answered


class _RuntimeAPI(object):
    def __init__(self, address, socket_path=None):
        address = address.strip()
        for scheme in ("http://", "https://"):
            if address.startswith(scheme):
                address = address[len(scheme):]
        address = address.rstrip("/")
        host, port = address, 80
        if address.startswith("["):  # [ipv6]:port
            end = address.find("]")
            host = address[1:end]
            rest = address[end + 1:]
            if rest.startswith(":"):
                port = int(rest[1:])
        elif address.count(":") == 1:
            host, _, p = address.partition(":")
            port = int(p)
        self.host = host
        self.port = port
        self.socket_path = socket_path
        self.host_header = "Host: %s:%d\r\n" % ("[%s]" % host if ":" in host else host, port)
        self.sock = None
        self.buf = bytearray()

    def _connect(self):
        if self.socket_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.socket_path)
        else:
            sock = socket.create_connection((self.host, self.port))  # no timeout: long poll
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.sock = sock
        self.buf = bytearray()
        return sock

    def _drop(self):
        sock, self.sock = self.sock, None
        self.buf = bytearray()
        if sock is not None:
            try:
                sock.close()
            except Exception:
                pass

    def _wire(self, method, path, body, headers):
        head = ["%s %s HTTP/1.1\r\n%s" % (method, path, self.host_header)]
        if headers:
            for k, v in headers.items():
                head.append("%s: %s\r\n" % (k, v))
        if body is not None:
            head.append("Content-Length: %d\r\n" % len(body))
        head.append("\r\n")
        wire = "".join(head).encode("latin-1")
        return wire + body if body is not None else wire

    def _fill(self, answered):
        chunk = self.sock.recv(262144)
        if not chunk:
            raise _Lost(answered)
        self.buf += chunk

    def _read_response(self):
        """One answer from the connection: (status, headers, body bytes)."""
        buf = self.buf
        try:
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    break
                self._fill(len(buf) > 0)
                buf = self.buf
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise ValueError("malformed response from the Runtime API: %r" % lines[0][:200])
            status = int(parts[1])
            headers = _Headers()
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body = bytearray()
                while True:
                    eol = self.buf.find(b"\r\n")
                    while eol < 0:
                        self._fill(True)
                        eol = self.buf.find(b"\r\n")
                    size = int(bytes(self.buf[:eol]).split(b";")[0], 16)
                    while len(self.buf) < eol + 2 + size + 2:
                        self._fill(True)
                    body += self.buf[eol + 2: eol + 2 + size]
                    del self.buf[: eol + 2 + size + 2]
                    if size == 0:
                        break
                body = bytes(body)
            else:
                length = int(headers.get("content-length", "0"))
                while len(self.buf) < length:
                    self._fill(True)
                body = bytes(self.buf[:length])
                del self.buf[:length]
        except (OSError, ValueError):
            self._drop()
            raise
        if "close" in headers.get("connection", "").lower():
            self._drop()
        return status, headers, body

    def _exchange(self, wires):
        """Writes the requests in one go (pipelined) and reads their answers in order. A
        kept-alive connection that the server closed before answering is replaced once; the
        requests not yet answered go again on the new one."""
        results = []
        retried = False
        while len(results) < len(wires):
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(b"".join(wires[len(results):]))
                while len(results) < len(wires):
                    results.append(self._read_response())
            except (_Lost, ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as e:
                self._drop()
                if retried or (isinstance(e, _Lost) and e.answered):
                    raise
                retried = True
        return results

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers, body bytes)."""
        return self._exchange([self._wire(method, path, body, headers)])[0]

    def answer_then_next(self, path, body, headers):
        """Posts an invocation's answer with the next long poll right behind it, on the same
        connection: one round trip less per invocation. Returns both answers."""
        return self._exchange([self._wire("POST", path, body, headers), self._wire("GET", _NEXT_PATH, None, None)])


def _fatal(message, exc=None):
    if exc is not None:
        message = "%s: %s: %s" % (message, type(exc).__name__, exc)
    sys.stderr.write("ERROR\tGust bootstrap: %s\n" % message)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


# ---------------------------------------------------------------------------
# JSON helpers.
# ---------------------------------------------------------------------------


def _json_default(obj):
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        if obj.is_finite() and obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    raise TypeError(
        "Object of type %s is not JSON serializable" % type(obj).__name__
    )


def _to_json(obj):
    return json.dumps(obj, default=_json_default)


# ---------------------------------------------------------------------------
# Errors (same shapes as awslambdaric).
# ---------------------------------------------------------------------------


class _FaultException(Exception):
    def __init__(self, exception_type, msg, trace=None):
        Exception.__init__(self, msg)
        self.exception_type = exception_type
        self.msg = msg
        self.trace = trace


def _make_error(message, error_type, stack_trace, request_id=None):
    return {
        "errorMessage": message if message else "",
        "errorType": error_type if error_type else "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _is_internal_frame(filename):
    # Leading frames that belong to this bootstrap or to the import machinery.
    if filename.startswith("<frozen importlib"):
        return True
    if filename.endswith(os.path.join("importlib", "__init__.py")):
        return True
    return os.path.abspath(filename) == _BOOTSTRAP_FILE


def _fault_from_exc_info(exc_info, request_id=None):
    etype, value, tb = exc_info
    traceback = _traceback()
    frames = traceback.extract_tb(tb)
    start = 0
    while start < len(frames) and _is_internal_frame(frames[start].filename):
        start += 1
    if start < len(frames):
        frames = frames[start:]
    try:
        message = str(value)
    except Exception:
        message = "<unprintable %s object>" % etype.__name__
    return _make_error(message, etype.__name__, traceback.format_list(frames), request_id)


def _header_safe(value):
    s = "".join(c for c in str(value) if " " <= c <= "~")
    return s or "Error"


def _log_error(error):
    # One physical line (continuation lines joined with \r), like the AWS
    # Python runtime's text-format error log.
    lines = ["[ERROR] %s: %s" % (error.get("errorType"), error.get("errorMessage"))]
    stack = error.get("stackTrace")
    if stack:
        lines.append("Traceback (most recent call last):")
        for element in stack:
            lines.extend(element.splitlines())
    sys.stderr.write("\r".join(lines).replace("\n", "\r") + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# Context object.
# ---------------------------------------------------------------------------


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = [
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    ]


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]


def _obj_from_dict(cls, d):
    if d is None:
        return None
    obj = cls()
    get = d.get if isinstance(d, dict) else (lambda _k, _d=None: None)
    for field in cls.__slots__:
        setattr(obj, field, get(field, None))
    return obj


# Read once (after specialization) by _read_env().
_ENV_FUNCTION_NAME = None
_ENV_FUNCTION_VERSION = None
_ENV_MEMORY = None
_ENV_LOG_GROUP = None
_ENV_LOG_STREAM = None


def _read_env():
    global _ENV_FUNCTION_NAME, _ENV_FUNCTION_VERSION, _ENV_MEMORY, _ENV_LOG_GROUP, _ENV_LOG_STREAM
    env = os.environ
    _ENV_FUNCTION_NAME = env.get("AWS_LAMBDA_FUNCTION_NAME")
    _ENV_FUNCTION_VERSION = env.get("AWS_LAMBDA_FUNCTION_VERSION")
    mem = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    try:
        _ENV_MEMORY = int(mem) if mem is not None else None
    except ValueError:
        _ENV_MEMORY = None
    _ENV_LOG_GROUP = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
    _ENV_LOG_STREAM = env.get("AWS_LAMBDA_LOG_STREAM_NAME")


class LambdaContext(object):
    __slots__ = [
        "aws_request_id",
        "log_group_name",
        "log_stream_name",
        "function_name",
        "memory_limit_in_mb",
        "function_version",
        "invoked_function_arn",
        "client_context",
        "identity",
        "_epoch_deadline_time_in_ms",
    ]

    def __init__(self, request_id, client_context, cognito_identity, deadline_ms, invoked_function_arn):
        self.aws_request_id = request_id
        self.log_group_name = _ENV_LOG_GROUP
        self.log_stream_name = _ENV_LOG_STREAM
        self.function_name = _ENV_FUNCTION_NAME
        self.memory_limit_in_mb = _ENV_MEMORY
        self.function_version = _ENV_FUNCTION_VERSION
        self.invoked_function_arn = invoked_function_arn
        cc = _obj_from_dict(ClientContext, client_context)
        if cc is not None:
            cc.client = _obj_from_dict(Client, cc.client)
        self.client_context = cc
        identity = CognitoIdentity()
        identity.cognito_identity_id = None
        identity.cognito_identity_pool_id = None
        if isinstance(cognito_identity, dict):
            identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        self.identity = identity
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        delta = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta if delta > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,"
            "function_name=%s,memory_limit_in_mb=%s,function_version=%s,"
            "invoked_function_arn=%s,client_context=%s,identity=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
            )
        )


def _parse_json_header(value, name):
    if not value:
        return None
    try:
        return json.loads(value)
    except Exception as e:
        raise _FaultException(
            "Runtime.LambdaContextUnmarshalError",
            "Unable to parse %s JSON: %s" % (name, e),
        )


# ---------------------------------------------------------------------------
# Logging: the root logger gets the same handler/format AWS installs, so
# `logging.getLogger().info(...)` after setLevel(INFO) shows up as on Lambda.
# print() output is left untouched.
# ---------------------------------------------------------------------------


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _GLOBAL_AWS_REQUEST_ID or ""
        return True


def _setup_logging():
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


# ---------------------------------------------------------------------------
# Handler loading.
# ---------------------------------------------------------------------------


def _get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise _FaultException(
            "Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (handler, e)
        )
    if not modname or not fname:
        raise _FaultException("Runtime.MalformedHandlerName", "Bad handler '%s'" % handler)

    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise _FaultException(
                "Runtime.BuiltInModuleConflict",
                "Cannot use built-in module %s as a handler module" % modname,
            )
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise _FaultException(
            "Runtime.ImportModuleError",
            "Unable to import module '%s': %s" % (modname, e),
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise _FaultException(
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module '%s': %s" % (modname, e),
            trace,
        )

    try:
        fn = getattr(module, fname)
    except AttributeError:
        raise _FaultException(
            "Runtime.HandlerNotFound",
            "Handler '%s' missing on module '%s'" % (fname, modname),
        )
    if not callable(fn):
        raise _FaultException(
            "Runtime.HandlerNotFound",
            "Handler '%s' on module '%s' is not callable" % (fname, modname),
        )
    return fn


# ---------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------


def _set_sys_path(task_root):
    script_dir = os.path.dirname(_BOOTSTRAP_FILE)
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != script_dir]
    if task_root in sys.path:
        sys.path.remove(task_root)
    sys.path.insert(0, task_root)


def _load_native():
    """Gust's native helper (gust_native.c), or None: trimming for spares, a setenv that does
    not leak. Optional: without it the bootstrap does both the plain way."""
    lib = os.environ.pop("GUST_NATIVE_LIB", None)
    if not lib:
        return None
    try:
        import ctypes

        native = ctypes.CDLL(lib)
        native.gust_set_trace_env.argtypes = [ctypes.c_char_p]
        native.gust_set_trace_env.restype = ctypes.c_int
        native.gust_trim_resident_files.restype = ctypes.c_long
        return native
    except Exception:
        return None


def _trim_resident_files(native):
    """A spare that is ready gives back the resident pages of its read-only file mappings.

    They stay in the page cache and come back as minor faults once the spare is given a
    function (gust_native.c). Without the native helper the spare keeps them.
    """
    if native is not None:
        native.gust_trim_resident_files()


def _trace_env_setter(native):
    """A function that puts this invocation's _X_AMZN_TRACE_ID (or None) in the environment.

    os.environ's setter calls setenv(), and glibc keeps every distinct value given to setenv
    for the life of the process; a trace id is new every invocation. With the native helper
    the real environment (what child processes inherit) is set without that, and os.environ's
    mapping is updated directly so Python code sees the same value.
    """
    environ = os.environ
    data = getattr(environ, "_data", None)
    encodekey = getattr(environ, "encodekey", None)
    encodevalue = getattr(environ, "encodevalue", None)
    if native is None or not isinstance(data, dict) or encodekey is None or encodevalue is None:

        def plain(trace_id):
            if trace_id:
                environ["_X_AMZN_TRACE_ID"] = trace_id
            elif "_X_AMZN_TRACE_ID" in environ:
                del environ["_X_AMZN_TRACE_ID"]

        return plain

    key = encodekey("_X_AMZN_TRACE_ID")
    set_native = native.gust_set_trace_env

    def owned(trace_id):
        if trace_id:
            value = encodevalue(trace_id)
            if set_native(value) != 0:
                environ["_X_AMZN_TRACE_ID"] = trace_id
                return
            data[key] = value
        else:
            set_native(None)
            data.pop(key, None)

    return owned


def _specialize(api):
    try:
        status, _headers, body = api.request("GET", _SPECIALIZE_PATH)
    except Exception as e:
        _fatal("specialize request failed", e)
    if status != 200:
        _fatal("unexpected status %s from %s: %r" % (status, _SPECIALIZE_PATH, body[:500]))
    try:
        spec = json.loads(body)
        if not isinstance(spec, dict):
            raise ValueError("not an object")
    except Exception as e:
        _fatal("invalid specialize response", e)

    os.environ.pop("GUST_PREWARM", None)
    env = spec.get("env")
    if not isinstance(env, dict):
        env = {}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[str(k)] = v if isinstance(v, str) else str(v)
    handler = spec.get("handler")
    if isinstance(handler, str) and handler:
        os.environ["_HANDLER"] = handler
    task_root = spec.get("taskRoot")
    if isinstance(task_root, str) and task_root:
        os.environ["LAMBDA_TASK_ROOT"] = task_root
    root = os.environ.get("LAMBDA_TASK_ROOT")
    if root:
        try:
            os.chdir(root)
        except OSError as e:
            _fatal("cannot chdir to task root %s" % root, e)
    # Variables normally consumed at interpreter start-up.
    if "TZ" in env and hasattr(time, "tzset"):
        time.tzset()
    pythonpath = env.get("PYTHONPATH")
    if isinstance(pythonpath, str) and pythonpath:
        for i, p in enumerate(x for x in pythonpath.split(os.pathsep) if x):
            if p not in sys.path:
                sys.path.insert(i, p)


def _post_init_error(api, error):
    _log_error(error)
    try:
        api.request(
            "POST",
            _INIT_ERROR_PATH,
            _to_json(error).encode("utf-8"),
            {
                "Content-Type": "application/json",
                _ERROR_TYPE_HEADER: _header_safe(error.get("errorType")),
            },
        )
    except Exception as e:
        sys.stderr.write("ERROR\tGust bootstrap: failed to post init error: %s\n" % e)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(1)


def main():
    global _GLOBAL_AWS_REQUEST_ID

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass

    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        _fatal("AWS_LAMBDA_RUNTIME_API is not set")
    api = _RuntimeAPI(address, os.environ.pop("GUST_RUNTIME_API_SOCKET", None))

    _setup_logging()

    native = _load_native()
    if os.environ.get("GUST_PREWARM") == "1":
        _trim_resident_files(native)
        _specialize(api)

    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    _set_sys_path(task_root)
    _read_env()

    try:
        handler = _get_handler(os.environ.get("_HANDLER", ""))
    except _FaultException as e:
        _post_init_error(api, _make_error(e.msg, e.exception_type, e.trace))
    except Exception:
        _post_init_error(api, _fault_from_exc_info(sys.exc_info()))

    set_trace_env = _trace_env_setter(native)
    request = api.request
    json_loads = json.loads
    to_json = _to_json
    json_headers = {"Content-Type": "application/json"}
    bytes_headers = {"Content-Type": "application/unknown"}

    answer_then_next = api.answer_then_next
    try:
        nxt = request("GET", _NEXT_PATH)
    except Exception as e:
        _fatal("failed to fetch next invocation", e)
    while True:
        status, headers, body = nxt
        if status != 200:
            _fatal("unexpected status %s from %s: %r" % (status, _NEXT_PATH, body[:500]))

        request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        if not request_id:
            _fatal("invocation without Lambda-Runtime-Aws-Request-Id header")
        _GLOBAL_AWS_REQUEST_ID = request_id

        set_trace_env(headers.get("Lambda-Runtime-Trace-Id"))

        error = None
        try:
            try:
                deadline = int(headers.get("Lambda-Runtime-Deadline-Ms"))
            except (TypeError, ValueError):
                deadline = int(time.time() * 1000) + _DEFAULT_DEADLINE_MS
            context = LambdaContext(
                request_id,
                _parse_json_header(headers.get("Lambda-Runtime-Client-Context"), "Client Context"),
                _parse_json_header(headers.get("Lambda-Runtime-Cognito-Identity"), "Cognito Identity"),
                deadline,
                headers.get("Lambda-Runtime-Invoked-Function-Arn"),
            )
            if body:
                try:
                    event = json_loads(body)
                except Exception as e:
                    raise _FaultException(
                        "Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e
                    )
            else:
                event = None

            result = handler(event, context)

            if isinstance(result, (bytes, bytearray)):
                payload = bytes(result)
                payload_headers = bytes_headers
            else:
                try:
                    payload = to_json(result).encode("utf-8")
                except Exception as e:
                    raise _FaultException(
                        "Runtime.MarshalError", "Unable to marshal response: %s" % e
                    )
                payload_headers = json_headers
        except _FaultException as e:
            error = _make_error(e.msg, e.exception_type, e.trace, request_id)
        except Exception:
            error = _fault_from_exc_info(sys.exc_info(), request_id)

        try:
            if error is None:
                (status, _h, rbody), nxt = answer_then_next(
                    _INVOCATION_PATH + _quote(request_id, safe="") + "/response", payload, payload_headers
                )
            else:
                _log_error(error)
                try:
                    error_body = to_json(error).encode("utf-8")
                except Exception:
                    error = _make_error(str(error.get("errorMessage")), str(error.get("errorType")), [], request_id)
                    error_body = to_json(error).encode("utf-8")
                (status, _h, rbody), nxt = answer_then_next(
                    _INVOCATION_PATH + _quote(request_id, safe="") + "/error",
                    error_body,
                    {
                        "Content-Type": "application/json",
                        _ERROR_TYPE_HEADER: _header_safe(error.get("errorType")),
                    },
                )
        except Exception as e:
            _fatal("failed to post the invocation result or to fetch the next invocation", e)
        if status != 202:
            sys.stderr.write(
                "ERROR\tGust bootstrap: runtime API rejected result for %s (%s): %r\n"
                % (request_id, status, rbody[:500])
            )


if __name__ == "__main__":
    main()
