"""AsyncClient: the asyncio client of baton-server (grpc.aio)."""
import asyncio

import grpc

from . import _convert, _finetune
from ._stubs import finetuning_pb2 as ft
from ._stubs import finetuning_pb2_grpc
from ._stubs import generation_pb2 as pb
from ._stubs import generation_pb2_grpc, health_pb2_grpc
from .errors import BatonError, DeadlineExceededError, from_rpc_error
from .results import FinetuneStep


class AsyncGenerateStream:
    """The events of one generation, as an async iterator: TokenEvents, then
    one FinalEvent. cancel() cancels the request and ends the iteration."""

    def __init__(self, call, convert=_convert.event_of):
        self._call = call
        self._convert = convert
        self._cancelled = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            try:
                response = await self._call.read()
            except grpc.aio.AioRpcError as error:
                if self._cancelled:
                    raise StopAsyncIteration from None
                raise from_rpc_error(error) from None
            except asyncio.CancelledError:
                if self._cancelled:  # grpc.aio reports our own cancel() this way
                    raise StopAsyncIteration from None
                raise
            if response is grpc.aio.EOF:
                raise StopAsyncIteration
            event = self._convert(response)
            if event is not None:
                return event

    def cancel(self):
        self._cancelled = True
        self._call.cancel()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        if not self._call.done():
            self.cancel()


class AsyncFinetuneWatch(AsyncGenerateStream):
    """WatchJob as an async iterator: FinetuneSteps, then the final FinetuneJob."""

    def __init__(self, call):
        super().__init__(call, _finetune.event_of)


class AsyncClient:
    """Asyncio client; the same methods as Client, as coroutines. Create it
    inside the event loop that uses it."""

    def __init__(self, target=None, *, channel=None, options=None):
        if channel is None and target is None:
            raise ValueError("AsyncClient needs a target ('host:port') or a channel")
        self._channel = channel if channel is not None else grpc.aio.insecure_channel(target, options=options)
        self._generation = generation_pb2_grpc.GenerationStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._finetuning = finetuning_pb2_grpc.FineTuningStub(self._channel)

    async def close(self):
        await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def generate(self, prompt=None, *, token_ids=None, max_new_tokens=32, temperature=None, top_k=None,
                       top_p=None, min_p=None, repetition_penalty=None, seed=None, stop=None, ignore_eos=False,
                       logprobs=0, request_id="", timeout=None, stream=False):
        """Like Client.generate; with stream=True returns an AsyncGenerateStream (`async for`)."""
        request = _convert.generate_request(prompt, token_ids, max_new_tokens, temperature, top_k, top_p, min_p,
                                            repetition_penalty, seed, stop, ignore_eos, logprobs, request_id)
        events = AsyncGenerateStream(self._generation.Generate(request, timeout=timeout))
        if stream:
            return events
        collector = _convert.ResultCollector(request)
        async with events:
            async for event in events:
                collector.add(event)
        return collector.result()

    async def tokenize(self, text, *, add_special_tokens=False, timeout=None):
        request = pb.TokenizeRequest(text=text, add_special_tokens=add_special_tokens)
        return list((await self._unary(self._generation.Tokenize, request, timeout)).token_ids)

    async def detokenize(self, token_ids, *, skip_special_tokens=False, timeout=None):
        request = pb.DetokenizeRequest(token_ids=list(token_ids), skip_special_tokens=skip_special_tokens)
        return (await self._unary(self._generation.Detokenize, request, timeout)).text

    async def model_info(self, *, timeout=None):
        message = await self._unary(self._generation.GetModelInfo, pb.GetModelInfoRequest(), timeout)
        return _convert.model_info_of(message)

    async def health(self, service="", *, timeout=None):
        response = await self._unary(self._health.Check, _convert.health_request(service), timeout)
        return _convert.serving_status_name(response)

    async def wait_until_serving(self, timeout=60.0, service=""):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = "no answer"
        while loop.time() < deadline:
            try:
                last = await self.health(service, timeout=max(0.1, min(1.0, deadline - loop.time())))
                if last == "SERVING":
                    return
            except BatonError as error:
                last = f"{type(error).__name__}: {error.message}"
            await asyncio.sleep(0.1)
        raise DeadlineExceededError(f"server not SERVING after {timeout} s (last: {last})",
                                    code=grpc.StatusCode.DEADLINE_EXCEEDED)

    async def create_finetune_job(self, data, out, *, model=None, timeout=None, **hyperparameters):
        """Like Client.create_finetune_job."""
        request = _finetune.create_request(data, out, model, **hyperparameters)
        return _finetune.job_of(await self._unary(self._finetuning.CreateJob, request, timeout))

    async def get_finetune_job(self, job_id, *, timeout=None):
        return _finetune.job_of(await self._unary(self._finetuning.GetJob, ft.GetJobRequest(id=job_id), timeout))

    async def list_finetune_jobs(self, *, timeout=None):
        response = await self._unary(self._finetuning.ListJobs, ft.ListJobsRequest(), timeout)
        return [_finetune.job_of(job) for job in response.jobs]

    def watch_finetune_job(self, job_id, *, timeout=None):
        """An AsyncFinetuneWatch (`async for`): FinetuneSteps, then the final FinetuneJob."""
        return AsyncFinetuneWatch(self._finetuning.WatchJob(ft.WatchJobRequest(id=job_id), timeout=timeout))

    async def wait_finetune_job(self, job_id, *, timeout=None):
        """Waits until the job has ended; returns (steps, final FinetuneJob)."""
        steps, final = [], None
        async with self.watch_finetune_job(job_id, timeout=timeout) as events:
            async for event in events:
                if isinstance(event, FinetuneStep):
                    steps.append(event)
                else:
                    final = event
        return steps, final

    async def cancel_finetune_job(self, job_id, *, timeout=None):
        return _finetune.job_of(await self._unary(self._finetuning.CancelJob, ft.CancelJobRequest(id=job_id), timeout))

    @staticmethod
    async def _unary(method, request, timeout):
        try:
            return await method(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
