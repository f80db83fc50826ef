"""baton_client: the Python client of baton-server (sync Client, asyncio AsyncClient)."""
from .aio import AsyncClient, AsyncGenerateStream
from .client import Client, GenerateStream
from .errors import (BatonError, CancelledError, DeadlineExceededError, GenerationError, InvalidArgumentError,
                     ResourceExhaustedError, UnavailableError)
from .results import FinalEvent, GenerateResult, ModelInfo, Timings, TokenEvent, TopLogprob, Usage

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncGenerateStream", "BatonError", "CancelledError", "Client", "DeadlineExceededError",
    "FinalEvent", "GenerateResult", "GenerateStream", "GenerationError", "InvalidArgumentError", "ModelInfo",
    "ResourceExhaustedError", "Timings", "TokenEvent", "TopLogprob", "UnavailableError", "Usage",
]
