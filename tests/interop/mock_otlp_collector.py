"""A MOCK OpenTelemetry collector, for the gateway's trace tests only: no
real collector runs on these machines, so this stands in for one. It
serves OTLP/HTTP on 127.0.0.1 (a port the OS picks), decodes every
`POST /v1/traces` body with the official protobuf schema (PyPI
`opentelemetry-proto`, `ExportTraceServiceRequest`) and appends each span
to the file named by its first argument as one JSON line:

  {"service", "trace_id", "span_id", "parent_span_id", "name", "kind",
   "start_ns", "end_ns", "attributes": {key: value}, "links": [{"trace_id",
   "span_id"}], "status_code", "status_message", "flags"}

(ids in lowercase hex, `parent_span_id` "" for a root span). A body that
does not decode, or a request without `Content-Type:
application/x-protobuf`, gets 400 and is recorded nowhere. Prints
`listening on http://127.0.0.1:PORT` once bound."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

OUT = sys.argv[1]


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        if self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_error(400, "expected application/x-protobuf")
            return
        req = ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except DecodeError as e:
            self.send_error(400, f"not an ExportTraceServiceRequest: {e}")
            return
        lines = []
        for rs in req.resource_spans:
            res = {kv.key: value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(
                        json.dumps(
                            {
                                "service": res.get("service.name"),
                                "scope": ss.scope.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex(),
                                "name": s.name,
                                "kind": s.kind,
                                "start_ns": s.start_time_unix_nano,
                                "end_ns": s.end_time_unix_nano,
                                "attributes": {
                                    kv.key: value(kv.value) for kv in s.attributes
                                },
                                "links": [
                                    {
                                        "trace_id": l.trace_id.hex(),
                                        "span_id": l.span_id.hex(),
                                    }
                                    for l in s.links
                                ],
                                "status_code": s.status.code,
                                "status_message": s.status.message,
                                "flags": s.flags,
                            }
                        )
                    )
        with open(OUT, "a") as f:
            f.write("".join(line + "\n" for line in lines))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
