"""baton_client: the Python client of baton-server (sync Client, asyncio AsyncClient)."""
from .aio import AsyncClient, AsyncFinetuneWatch, AsyncGenerateStream
from .client import Client, FinetuneWatch, GenerateStream
from .errors import (BatonError, CancelledError, DeadlineExceededError, FailedPreconditionError, GenerationError,
                     InvalidArgumentError, NotFoundError, ResourceExhaustedError, UnavailableError)
from .results import (FinalEvent, FinetuneJob, FinetuneStep, GenerateResult, ModelInfo, Timings, TokenEvent,
                      TopLogprob, Usage)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncFinetuneWatch", "AsyncGenerateStream", "BatonError", "CancelledError", "Client",
    "DeadlineExceededError", "FailedPreconditionError", "FinalEvent", "FinetuneJob", "FinetuneStep",
    "FinetuneWatch", "GenerateResult", "GenerateStream", "GenerationError", "InvalidArgumentError", "ModelInfo",
    "NotFoundError", "ResourceExhaustedError", "Timings", "TokenEvent", "TopLogprob", "UnavailableError", "Usage",
]
