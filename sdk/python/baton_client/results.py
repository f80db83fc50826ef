"""What the client returns: plain dataclasses, no protobuf types."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass(frozen=True)
class TopLogprob:
    token_id: int
    logprob: float


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens served by the prefix cache


@dataclass(frozen=True)
class Timings:
    queue_seconds: float = 0.0
    time_to_first_token_seconds: float = 0.0
    total_seconds: float = 0.0


@dataclass(frozen=True)
class TokenEvent:
    """Tokens accepted since the last event and their new text (may be empty mid-character)."""
    token_ids: List[int]
    text: str
    logprobs: List[float] = field(default_factory=list)  # one per token_ids entry, when requested
    top_logprobs: List[List[TopLogprob]] = field(default_factory=list)


@dataclass(frozen=True)
class FinalEvent:
    """The last event of a generation."""
    finish_reason: str  # "length", "stop", "eos", "cancelled" or "error"
    text: str  # the whole output (stop string cut)
    output_ids: List[int]
    usage: Usage
    timings: Timings
    error: str = ""
    prompt_ids: List[int] = field(default_factory=list)


@dataclass(frozen=True)
class GenerateResult:
    """A whole generation (generate() without stream=True)."""
    text: str
    output_ids: List[int]
    finish_reason: str
    usage: Usage
    timings: Timings
    prompt_ids: List[int] = field(default_factory=list)
    logprobs: Optional[List[float]] = None  # with logprobs=N > 0
    top_logprobs: Optional[List[List[TopLogprob]]] = None


@dataclass(frozen=True)
class ModelInfo:
    architecture: str
    model_path: str
    num_layers: int
    num_stages: int
    layers_per_stage: List[int]
    context_length: int
    vocab_size: int
    dtype: str
    device: str
    kv_block_size: int
    kv_num_blocks: int
    eos_token_ids: List[int]
    max_batch_tokens: int
    micro_batches: int


@dataclass(frozen=True)
class FinetuneStep:
    """One optimizer step of a fine-tuning job, as `baton finetune --json` reports it."""
    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens_per_s: float
    eta_s: float


@dataclass(frozen=True)
class FinetuneJob:
    """A fine-tuning job on the server. Times are seconds since the Unix epoch (0 = not yet)."""
    id: str
    state: str  # "queued", "running", "succeeded", "failed" or "cancelled"
    step: int
    total_steps: int  # 0 while unknown (the binary's default)
    loss: float
    lr: float
    tokens_per_s: float
    eta_s: float
    final_loss: float  # after the last step, once succeeded
    create_time: float
    start_time: float
    finish_time: float
    out: str  # resolved output folder on the server
    log_path: str
    error: str
    pid: int  # while running
    request: Dict[str, Any] = field(default_factory=dict)  # the fields the job was created with

    @property
    def done(self):
        return self.state in ("succeeded", "failed", "cancelled")
