"""A SnapEarth client made only of stubs generated from one revision's proto files.

Run as ``python client.py GENERATED_DIR`` with a JSON job on stdin:
``{"address": ..., "calls": [{"service": "v1"|"v2", "method": ..., "request": {...},
"geobuf": {field: GeoJSON}, "metadata": [[key, value]]}]}`` (``request_type`` names the
request message of a method the revision's service lacks). For each call it prints (one JSON
document on stdout) the answers as ``MessageToDict`` with proto field names (bytes fields come
out base64, as grpcurl prints them), the V2 geobuf answers decoded with the ``geobuf`` package,
and the status code. It runs in its own process because both revisions' files have the same
names (``snapearth/api/v1/database.proto``) and one process's protobuf pool holds one of them;
it imports nothing of the server.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import geobuf
import grpc
from google.protobuf.json_format import MessageToDict, ParseDict

LIMIT = 1024 * 1024 * 1024


def call(channel: grpc.Channel, job: dict[str, Any]) -> dict[str, Any]:
    messages = importlib.import_module(f"snapearth.api.{job['service']}.database_pb2")
    services = importlib.import_module(f"snapearth.api.{job['service']}.database_pb2_grpc")
    service = messages.DESCRIPTOR.services_by_name["DatabaseProductService"]
    method = service.methods_by_name.get(job["method"])
    request = getattr(messages, method.input_type.name if method else job["request_type"])()
    ParseDict(job.get("request", {}), request)
    for field, geojson in job.get("geobuf", {}).items():
        getattr(request, field).ParseFromString(geobuf.encode(geojson))
    if method is None:  # not in this revision's service: call the path a client would guess
        rpc = channel.unary_stream(
            f"/{service.full_name}/{job['method']}",
            request_serializer=type(request).SerializeToString,
        )
        streaming = True
    else:
        rpc = getattr(services.DatabaseProductServiceStub(channel), job["method"])
        streaming = method.server_streaming
    metadata = [tuple(pair) for pair in job.get("metadata", [])]
    answers: list[Any] = []
    result: dict[str, Any] = {"answers": answers, "code": "OK", "details": ""}
    try:
        reply = rpc(request, metadata=metadata, timeout=60)
        for message in reply if streaming else [reply]:
            answer = MessageToDict(message, preserving_proto_field_name=True)
            if job["service"] == "v2" and message.DESCRIPTOR.name == "SegmentationResponse":
                answer["geojson"] = geobuf.decode(message.segmentation.SerializeToString())
            answers.append(answer)
    except grpc.RpcError as exc:
        result["code"], result["details"] = exc.code().name, exc.details()
    return result


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    job = json.load(sys.stdin)
    options = [("grpc.max_receive_message_length", LIMIT), ("grpc.max_send_message_length", LIMIT)]
    with grpc.insecure_channel(job["address"], options=options) as channel:
        json.dump([call(channel, c) for c in job["calls"]], sys.stdout)


if __name__ == "__main__":
    main()
