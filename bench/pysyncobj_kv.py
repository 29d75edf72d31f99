#!/usr/bin/env python3
"""The assignment's key/value service built on PySyncObj, the way the assignment's own system is:
the benchmark's baseline. Same HTTP API as raftkv (POST/GET /keys/{key}, GET /admin/status as
JSON with role/term/has_quorum/last_applied), same command line as `raftkv node`:

    pysyncobj_kv.py HTTP_PORT SELF_ADDR PEER_ADDR... --data-dir DIR

A write answers 204 only after PySyncObj applied it (sync=True: committed by a majority). A GET
is linearizable by going through the log as a replicated read (PySyncObj has no read index);
`?consistency=local` reads this node's copy. The Raft log is kept in PySyncObj's journal file
(memory-mapped; PySyncObj does not fsync it per entry, so this baseline is *less* durable than
raftkv and etcd, which fsync before acknowledging).
"""

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from pysyncobj import SyncObj, SyncObjConf, SyncObjException, replicated

ROLES = {0: "follower", 1: "candidate", 2: "leader"}


class KV(SyncObj):
    def __init__(self, self_addr, peers, conf):
        super().__init__(self_addr, peers, conf=conf)
        self.data = {}

    @replicated
    def put(self, key, value):
        self.data[key] = list(value)

    @replicated
    def append(self, key, item):
        self.data.setdefault(key, []).append(item)

    @replicated
    def read(self, key):
        return self.data.get(key)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the other systems' clients expect
    # Headers and body go out in separate writes; without this, Nagle's algorithm holds the body
    # until the client's delayed ACK (40 ms per request), which would measure the HTTP server.
    disable_nagle_algorithm = True
    kv = None
    timeout_s = 5.0

    def log_message(self, *args):
        pass

    def reply(self, code, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def key(self):
        path = urlsplit(self.path).path
        return unquote(path[len("/keys/"):]) if path.startswith("/keys/") else None

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/admin/status":
            s = self.kv.getStatus()
            role = ROLES.get(s["state"], "unknown")
            return self.reply(200, {
                "role": role,
                "term": s["raft_term"],
                "has_quorum": role == "leader" and bool(s["has_quorum"]),
                "leader": None if s["leader"] is None else str(s["leader"]),
                "commit_index": s["commit_idx"],
                "last_applied": s["last_applied"],
                "log_len": s["log_len"],
            })
        key = self.key()
        if key is None:
            return self.reply(404, {"error": "no such path"})
        if parse_qs(url.query).get("consistency") == ["local"]:
            value = self.kv.data.get(key)
        else:
            try:
                value = self.kv.read(key, sync=True, timeout=self.timeout_s)
            except SyncObjException as e:
                return self.reply(503, {"error": f"unavailable: {e.errorCode}"})
        if value is None:
            return self.reply(404, {"error": "no such key"})
        return self.reply(200, value)

    def do_POST(self):
        key = self.key()
        length = int(self.headers.get("Content-Length", 0))
        try:
            body = json.loads(self.rfile.read(length))
            kind, value = body["type"], body["value"]
        except (ValueError, KeyError, TypeError):
            return self.reply(400, {"error": "body must be {type, value}"})
        if key is None:
            return self.reply(404, {"error": "no such path"})
        try:
            if kind == "PUT" and isinstance(value, list):
                self.kv.put(key, value, sync=True, timeout=self.timeout_s)
            elif kind == "APPEND" and isinstance(value, str):
                self.kv.append(key, value, sync=True, timeout=self.timeout_s)
            else:
                return self.reply(400, {"error": "PUT takes a list, APPEND a string"})
        except SyncObjException as e:
            return self.reply(503, {"error": f"unavailable: {e.errorCode}"})
        return self.reply(204)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("http_port", type=int)
    p.add_argument("self_addr")
    p.add_argument("peers", nargs="+")
    p.add_argument("--data-dir", required=True)
    a = p.parse_args()
    os.makedirs(a.data_dir, exist_ok=True)
    conf = SyncObjConf(
        journalFile=os.path.join(a.data_dir, "journal"),
        fullDumpFile=os.path.join(a.data_dir, "dump"),
    )
    peers = [x for x in a.peers if x != a.self_addr]
    Handler.kv = KV(a.self_addr, peers, conf)
    # The stdlib's listen backlog is 5: 256 clients connecting at once would have their SYNs
    # dropped and retried for seconds, which would measure the backlog, not PySyncObj.
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", a.http_port), Handler)
    server.daemon_threads = True
    threading.current_thread().name = "http"
    server.serve_forever()


if __name__ == "__main__":
    main()
