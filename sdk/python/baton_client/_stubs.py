"""The generated gRPC modules, built from proto/ at install (or CMake build) time."""
try:
    from baton.v1 import finetuning_pb2, finetuning_pb2_grpc, generation_pb2, generation_pb2_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
except ImportError as error:  # pragma: no cover - an installation problem, said plainly
    raise ImportError(
        "baton_client: the generated stubs (baton.v1, grpc_health.v1) are missing; install the package "
        "with pip, or put a CMake build's python/ folder on PYTHONPATH") from error

__all__ = ["finetuning_pb2", "finetuning_pb2_grpc", "generation_pb2", "generation_pb2_grpc", "health_pb2",
           "health_pb2_grpc"]
