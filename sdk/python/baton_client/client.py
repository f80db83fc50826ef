"""Client: the synchronous client of baton-server."""
import time

import grpc

from . import _convert, _finetune
from ._stubs import finetuning_pb2 as ft
from ._stubs import finetuning_pb2_grpc
from ._stubs import generation_pb2 as pb
from ._stubs import generation_pb2_grpc, health_pb2_grpc
from .errors import BatonError, DeadlineExceededError, from_rpc_error
from .results import FinetuneStep


class GenerateStream:
    """The events of one generation: TokenEvents, then one FinalEvent.

    Iterate it; cancel() (or leaving a `with` block early) cancels the request
    on the server and ends the iteration.
    """

    def __init__(self, call, convert=_convert.event_of):
        self._call = call
        self._convert = convert
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
            event = self._convert(response)
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


class FinetuneWatch(GenerateStream):
    """The events of WatchJob: a FinetuneStep per optimizer step (past ones
    first), then the job's final FinetuneJob. cancel() stops watching (the job
    goes on)."""

    def __init__(self, call):
        super().__init__(call, _finetune.event_of)


class Client:
    """Synchronous client. `target` is "host:port"; the channel is plaintext
    unless a ready `channel` is given. Safe to share between threads."""

    def __init__(self, target=None, *, channel=None, options=None):
        if channel is None and target is None:
            raise ValueError("Client needs a target ('host:port') or a channel")
        self._channel = channel if channel is not None else grpc.insecure_channel(target, options=options)
        self._generation = generation_pb2_grpc.GenerationStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._finetuning = finetuning_pb2_grpc.FineTuningStub(self._channel)

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

    def create_finetune_job(self, data, out, *, model=None, timeout=None, **hyperparameters):
        """Starts (or queues) a fine-tuning job on the server; returns its FinetuneJob.

        `data` and `out` are paths relative to the server's --finetune-dir (and must stay inside
        it); `model` defaults to the served model. Hyperparameters are `baton finetune`'s flags
        in snake_case: steps, lr, batch_size, seq_len, lr_schedule, warmup, weight_decay,
        grad_clip, seed, no_shuffle, micro_batch_size, pp, dp, zero, schedule, micro_batches,
        activation_checkpointing, checkpoint_every, resume. Those not given keep the binary's
        defaults.
        """
        request = _finetune.create_request(data, out, model, **hyperparameters)
        return _finetune.job_of(self._unary(self._finetuning.CreateJob, request, timeout))

    def get_finetune_job(self, job_id, *, timeout=None):
        """The job's state and progress (NotFoundError for an unknown id)."""
        return _finetune.job_of(self._unary(self._finetuning.GetJob, ft.GetJobRequest(id=job_id), timeout))

    def list_finetune_jobs(self, *, timeout=None):
        """Every job the server has seen since it started, oldest first."""
        response = self._unary(self._finetuning.ListJobs, ft.ListJobsRequest(), timeout)
        return [_finetune.job_of(job) for job in response.jobs]

    def watch_finetune_job(self, job_id, *, timeout=None):
        """A FinetuneWatch: iterate it for FinetuneSteps, then the final FinetuneJob."""
        return FinetuneWatch(self._finetuning.WatchJob(ft.WatchJobRequest(id=job_id), timeout=timeout))

    def wait_finetune_job(self, job_id, *, timeout=None):
        """Blocks until the job has ended; returns (steps, final FinetuneJob)."""
        steps, final = [], None
        with self.watch_finetune_job(job_id, timeout=timeout) as events:
            for event in events:
                if isinstance(event, FinetuneStep):
                    steps.append(event)
                else:
                    final = event
        return steps, final

    def cancel_finetune_job(self, job_id, *, timeout=None):
        """Cancels the job; returns once its process is gone, with its final FinetuneJob."""
        return _finetune.job_of(self._unary(self._finetuning.CancelJob, ft.CancelJobRequest(id=job_id), timeout))

    @staticmethod
    def _unary(method, request, timeout):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
