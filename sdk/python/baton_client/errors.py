"""Typed errors: one class per gRPC status a caller handles differently."""
import re

import grpc


class BatonError(Exception):
    """A failed call. `code` is the grpc.StatusCode, `message` the server's text."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        self.code = code


class InvalidArgumentError(BatonError):
    """A request field is invalid; `field` names it (None when the message names none)."""

    def __init__(self, message, code=grpc.StatusCode.INVALID_ARGUMENT, field=None):
        super().__init__(message, code)
        self.field = field if field is not None else _field_of(message)


class ResourceExhaustedError(BatonError):
    """The server's queue is full (or another limit is reached); retry later."""


class DeadlineExceededError(BatonError):
    """The call's deadline (`timeout`) passed before it finished."""


class UnavailableError(BatonError):
    """The server is unreachable, shutting down, or lost a worker rank."""


class CancelledError(BatonError):
    """The call was cancelled (by the server, or this process)."""


class NotFoundError(BatonError):
    """No such thing on the server (e.g. an unknown fine-tuning job id)."""


class FailedPreconditionError(BatonError):
    """The server is not set up for this call (e.g. fine-tuning without --finetune-dir)."""


class GenerationError(BatonError):
    """A generation that the server ended with finish_reason "error"."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
}

# Server messages start with the field at fault: "sampling.top_p: must be in (0, 1], got 1.5".
_FIELD = re.compile(r"^\s*([A-Za-z_][\w.\[\]]*)\s*:")


def _field_of(message):
    match = _FIELD.match(message or "")
    return match.group(1) if match else None


def from_rpc_error(error):
    """The BatonError for a grpc.RpcError (sync) or grpc.aio.AioRpcError."""
    code = error.code()
    message = error.details() or (code.name if code else "unknown gRPC error")
    return _BY_CODE.get(code, BatonError)(message, code=code)
