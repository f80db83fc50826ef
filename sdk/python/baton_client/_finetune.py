"""FineTuning requests and responses, shared by Client and AsyncClient."""
from ._stubs import finetuning_pb2 as ft
from .results import FinetuneJob, FinetuneStep

# CreateJobRequest fields given as keyword arguments (baton finetune's flags, snake_case).
HYPERPARAMETERS = tuple(f.name for f in ft.CreateJobRequest.DESCRIPTOR.fields
                        if f.name not in ("model", "data", "out"))


def create_request(data, out, model=None, **hyperparameters):
    """A CreateJobRequest; hyperparameters left out (or None) stay unset, so the server's binary
    uses its defaults."""
    unknown = sorted(set(hyperparameters) - set(HYPERPARAMETERS))
    if unknown:
        raise TypeError(f"unknown fine-tuning argument(s) {', '.join(unknown)}; "
                        f"expected some of: {', '.join(HYPERPARAMETERS)}")
    request = ft.CreateJobRequest(data=data, out=out, model=model or "")
    for name, value in hyperparameters.items():
        if value is not None:
            setattr(request, name, value)
    return request


def state_name(state):
    return ft.JobState.Name(state).replace("JOB_STATE_", "").lower()


def job_of(message):
    return FinetuneJob(
        id=message.id, state=state_name(message.state), step=message.step, total_steps=message.total_steps,
        loss=message.loss, lr=message.lr, tokens_per_s=message.tokens_per_s, eta_s=message.eta_s,
        final_loss=message.final_loss, create_time=message.create_time, start_time=message.start_time,
        finish_time=message.finish_time, out=message.out, log_path=message.log_path, error=message.error,
        pid=message.pid, request={f.name: value for f, value in message.request.ListFields()})


def event_of(response):
    """A FinetuneStep or the final FinetuneJob carried by a WatchJobResponse (None for an empty one)."""
    kind = response.WhichOneof("event")
    if kind == "step":
        s = response.step
        return FinetuneStep(step=s.step, loss=s.loss, lr=s.lr, grad_norm=s.grad_norm, tokens_per_s=s.tokens_per_s,
                            eta_s=s.eta_s)
    if kind == "final":
        return job_of(response.final)
    return None
