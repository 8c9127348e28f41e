"""Generates the protobuf message classes of proto/ into a temporary directory and puts it on sys.path,
so the conformance scripts need only Debian's python3-grpcio and python3-grpc-tools, no build step."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

PROTO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'proto'))


def generate():
    out = tempfile.mkdtemp(prefix='sluice-conformance-')
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    subprocess.run([sys.executable, '-m', 'grpc_tools.protoc', f'-I{PROTO}', f'--python_out={out}',
                    os.path.join(PROTO, 'api.proto'), os.path.join(PROTO, 'health.proto')], check=True)
    sys.path.insert(0, out)
