"""Request building and response conversion, shared by Client and AsyncClient."""
from dataclasses import fields

import grpc

from ._stubs import generation_pb2 as pb
from ._stubs import health_pb2
from .errors import GenerationError, InvalidArgumentError
from .results import FinalEvent, GenerateResult, ModelInfo, Timings, TokenEvent, TopLogprob, Usage

_FINISH_REASONS = {
    pb.FINISH_REASON_LENGTH: "length",
    pb.FINISH_REASON_STOP: "stop",
    pb.FINISH_REASON_EOS: "eos",
    pb.FINISH_REASON_CANCELLED: "cancelled",
    pb.FINISH_REASON_ERROR: "error",
}


def _local_error(field, message):
    return InvalidArgumentError(f"{field}: {message}", code=grpc.StatusCode.INVALID_ARGUMENT, field=field)


def generate_request(prompt=None, token_ids=None, max_new_tokens=32, temperature=None, top_k=None, top_p=None,
                     min_p=None, repetition_penalty=None, seed=None, stop=None, ignore_eos=False, logprobs=0,
                     request_id=""):
    """A GenerateRequest; `prompt` is text or a list of token ids. Unset sampling fields stay unset."""
    if prompt is not None and token_ids is not None:
        raise _local_error("prompt", "give a prompt or token_ids, not both")
    if prompt is None and token_ids is None:
        raise _local_error("prompt", "a prompt (text or token ids) is required")
    request = pb.GenerateRequest(max_new_tokens=max_new_tokens, ignore_eos=ignore_eos, logprobs=logprobs,
                                 request_id=request_id or "")
    if isinstance(prompt, str):
        request.text = prompt
    else:
        ids = prompt if prompt is not None else token_ids
        if isinstance(ids, (str, bytes)) or not all(isinstance(i, int) for i in ids):
            raise _local_error("token_ids", "must be a list of int token ids")
        request.token_ids.ids.extend(ids)
    sampling = request.sampling
    for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p), ("min_p", min_p),
                        ("repetition_penalty", repetition_penalty), ("seed", seed)):
        if value is not None:
            setattr(sampling, name, value)
    if stop is not None:
        request.stop.extend([stop] if isinstance(stop, str) else list(stop))
    return request


def event_of(response):
    """The TokenEvent or FinalEvent carried by a GenerateResponse (None for an empty one)."""
    kind = response.WhichOneof("event")
    if kind == "token":
        t = response.token
        return TokenEvent(
            token_ids=list(t.token_ids), text=t.text, logprobs=list(t.logprobs),
            top_logprobs=[[TopLogprob(e.token_id, e.logprob) for e in top.entries] for top in t.top_logprobs])
    if kind == "final":
        f = response.final
        return FinalEvent(
            finish_reason=_FINISH_REASONS.get(f.finish_reason, "unspecified"), text=f.text,
            output_ids=list(f.output_ids),
            usage=Usage(f.usage.prompt_tokens, f.usage.completion_tokens, f.usage.cached_prompt_tokens),
            timings=Timings(f.timings.queue_seconds, f.timings.time_to_first_token_seconds, f.timings.total_seconds),
            error=f.error, prompt_ids=list(f.prompt_ids))
    return None


class ResultCollector:
    """Folds a generation's events into one GenerateResult."""

    def __init__(self, request):
        self._want_logprobs = request.logprobs > 0
        self._prompt_ids = list(request.token_ids.ids) if request.HasField("token_ids") else []
        self._logprobs, self._top = [], []
        self._final = None

    def add(self, event):
        if isinstance(event, TokenEvent):
            self._logprobs.extend(event.logprobs)
            self._top.extend(event.top_logprobs)
        elif isinstance(event, FinalEvent):
            self._final = event

    def result(self):
        f = self._final
        if f is None:
            raise GenerationError("Generate: the stream ended without a final event", code=grpc.StatusCode.INTERNAL)
        if f.finish_reason == "error":
            raise GenerationError(f.error or "the server reported an error", code=grpc.StatusCode.INTERNAL)
        return GenerateResult(
            text=f.text, output_ids=f.output_ids, finish_reason=f.finish_reason, usage=f.usage, timings=f.timings,
            prompt_ids=f.prompt_ids or self._prompt_ids,
            logprobs=self._logprobs if self._want_logprobs else None,
            top_logprobs=self._top if self._want_logprobs else None)


def model_info_of(message):
    values = {}
    for f in fields(ModelInfo):
        value = getattr(message, f.name)
        values[f.name] = value if isinstance(value, (str, int, float)) else list(value)
    return ModelInfo(**values)


def health_request(service):
    return health_pb2.HealthCheckRequest(service=service)


def serving_status_name(response):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
