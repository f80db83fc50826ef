"""Client: the synchronous client of baton-server."""
import time

import grpc

from . import _convert
from ._stubs import generation_pb2 as pb
from ._stubs import generation_pb2_grpc, health_pb2_grpc
from .errors import BatonError, DeadlineExceededError, from_rpc_error


class GenerateStream:
    """The events of one generation: TokenEvents, then one FinalEvent.

    Iterate it; cancel() (or leaving a `with` block early) cancels the request
    on the server and ends the iteration.
    """

    def __init__(self, call):
        self._call = call
        self._cancelled = False

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            try:
                response = next(self._call)
            except grpc.RpcError as error:
                if self._cancelled:
                    raise StopIteration from None
                raise from_rpc_error(error) from None
            event = _convert.event_of(response)
            if event is not None:
                return event

    def cancel(self):
        self._cancelled = True
        self._call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._call.is_active():
            self.cancel()


class Client:
    """Synchronous client. `target` is "host:port"; the channel is plaintext
    unless a ready `channel` is given. Safe to share between threads."""

    def __init__(self, target=None, *, channel=None, options=None):
        if channel is None and target is None:
            raise ValueError("Client needs a target ('host:port') or a channel")
        self._channel = channel if channel is not None else grpc.insecure_channel(target, options=options)
        self._generation = generation_pb2_grpc.GenerationStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def generate(self, prompt=None, *, token_ids=None, max_new_tokens=32, temperature=None, top_k=None, top_p=None,
                 min_p=None, repetition_penalty=None, seed=None, stop=None, ignore_eos=False, logprobs=0,
                 request_id="", timeout=None, stream=False):
        """Generates from `prompt` (text or token ids) or `token_ids`.

        Returns a GenerateResult, or with stream=True a GenerateStream of
        events. Unset sampling arguments take the model's defaults; temperature
        0 is greedy. `timeout` (seconds) bounds the whole call.
        """
        request = _convert.generate_request(prompt, token_ids, max_new_tokens, temperature, top_k, top_p, min_p,
                                            repetition_penalty, seed, stop, ignore_eos, logprobs, request_id)
        events = GenerateStream(self._generation.Generate(request, timeout=timeout))
        if stream:
            return events
        collector = _convert.ResultCollector(request)
        with events:
            for event in events:
                collector.add(event)
        return collector.result()

    def tokenize(self, text, *, add_special_tokens=False, timeout=None):
        """Token ids of `text` with the served model's tokenizer."""
        request = pb.TokenizeRequest(text=text, add_special_tokens=add_special_tokens)
        return list(self._unary(self._generation.Tokenize, request, timeout).token_ids)

    def detokenize(self, token_ids, *, skip_special_tokens=False, timeout=None):
        """Text of `token_ids`."""
        request = pb.DetokenizeRequest(token_ids=list(token_ids), skip_special_tokens=skip_special_tokens)
        return self._unary(self._generation.Detokenize, request, timeout).text

    def model_info(self, *, timeout=None):
        """The served model's facts (a ModelInfo)."""
        return _convert.model_info_of(self._unary(self._generation.GetModelInfo, pb.GetModelInfoRequest(), timeout))

    def health(self, service="", *, timeout=None):
        """grpc.health.v1 status name: "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN"."""
        response = self._unary(self._health.Check, _convert.health_request(service), timeout)
        return _convert.serving_status_name(response)

    def wait_until_serving(self, timeout=60.0, service=""):
        """Polls health until SERVING; DeadlineExceededError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                last = self.health(service, timeout=max(0.1, min(1.0, deadline - time.monotonic())))
                if last == "SERVING":
                    return
            except BatonError as error:
                last = f"{type(error).__name__}: {error.message}"
            time.sleep(0.1)
        raise DeadlineExceededError(f"server not SERVING after {timeout} s (last: {last})",
                                    code=grpc.StatusCode.DEADLINE_EXCEEDED)

    @staticmethod
    def _unary(method, request, timeout):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
