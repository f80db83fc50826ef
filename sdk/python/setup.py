"""Builds baton_client. The gRPC stubs are not in the source tree: the build
step runs protoc with the gRPC Python plugin on ../../proto (baton.v1) and on
the standard grpc/health/v1/health.proto (Debian's grpc-proto package), and
puts the modules `baton.v1` and `grpc_health.v1` next to baton_client.

Tools, first found wins: $BATON_PROTOC + $BATON_GRPC_PYTHON_PLUGIN, protoc +
grpc_python_plugin on PATH (Debian: protobuf-compiler, protobuf-compiler-grpc),
or grpcio-tools. $BATON_PROTO_DIR and $BATON_GRPC_PROTO_DIR override where
the .proto files are read from.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get("BATON_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))
GRPC_PROTO_DIR = os.environ.get("BATON_GRPC_PROTO_DIR", "/usr/share/grpc-proto")


def protoc_command():
    protoc = os.environ.get("BATON_PROTOC") or shutil.which("protoc")
    plugin = os.environ.get("BATON_GRPC_PYTHON_PLUGIN") or shutil.which("grpc_python_plugin")
    if protoc and plugin:
        return [protoc, "--plugin=protoc-gen-grpc_python=" + plugin]
    try:
        import grpc_tools.protoc  # noqa: F401  (has the gRPC plugin built in)
    except ImportError:
        sys.exit("baton_client: need protoc and grpc_python_plugin (Debian: apt install protobuf-compiler "
                 "protobuf-compiler-grpc) or the grpcio-tools package to generate the gRPC stubs")
    return [sys.executable, "-m", "grpc_tools.protoc"]


def generate_stubs(out_dir):
    """Writes baton/v1/*_pb2*.py and grpc_health/v1/health_pb2*.py under out_dir."""
    out_dir = os.path.abspath(out_dir)  # protoc runs in the staging folder
    api_protos = sorted(glob.glob(os.path.join(PROTO_DIR, "baton", "v1", "*.proto")))
    health_proto = os.path.join(GRPC_PROTO_DIR, "grpc", "health", "v1", "health.proto")
    if not api_protos:
        sys.exit(f"baton_client: no .proto files in {PROTO_DIR}/baton/v1 (set BATON_PROTO_DIR)")
    if not os.path.isfile(health_proto):
        sys.exit(f"baton_client: {health_proto} is missing (Debian: apt install grpc-proto; or set BATON_GRPC_PROTO_DIR)")
    with tempfile.TemporaryDirectory() as staged:
        # Python imports the health stubs as grpc_health.v1 (as grpcio-health-checking
        # names them); under grpc/ they would shadow the grpc package.
        os.makedirs(os.path.join(staged, "baton", "v1"))
        os.makedirs(os.path.join(staged, "grpc_health", "v1"))
        names = []
        for proto in api_protos:
            name = os.path.join("baton", "v1", os.path.basename(proto))
            shutil.copy(proto, os.path.join(staged, name))
            names.append(name)
        name = os.path.join("grpc_health", "v1", "health.proto")
        shutil.copy(health_proto, os.path.join(staged, name))
        names.append(name)
        os.makedirs(out_dir, exist_ok=True)
        command = protoc_command() + ["-I", staged, "--python_out=" + out_dir, "--grpc_python_out=" + out_dir] + names
        subprocess.run(command, check=True, cwd=staged)
    for package in ("baton", "baton/v1", "grpc_health", "grpc_health/v1"):
        open(os.path.join(out_dir, package, "__init__.py"), "a").close()


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        generate_stubs(self.build_lib)


setup(cmdclass={"build_py": BuildPyWithStubs})
